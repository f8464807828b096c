/** The client-certificate header values nginx, Envoy and Traefik would send for a leaf (and an intermediate). */
export interface HeaderForms {
  /** nginx `$ssl_client_escaped_cert`: the URL-encoded PEM leaf. */
  readonly nginx: string;
  /** URL-encoded PEM leaf and intermediate. */
  readonly nginxChain: string;
  /** Envoy `x-forwarded-client-cert` with Hash, Cert, Chain, Subject. */
  readonly envoy: string;
  /** Traefik `X-Forwarded-Tls-Client-Cert`: base64 DER. */
  readonly traefik: string;
  readonly traefikChain: string;
  /** Older Traefik versions URL-escape the value ("escaped pem"). */
  readonly traefikEscaped: string;
}

function base64Der(pem: string): string {
  return pem.split('\n').filter((line) => line !== '' && !line.startsWith('-----')).join('');
}

export function headerForms(leafPem: string, intermediatePem?: string): HeaderForms {
  const chain = intermediatePem ? leafPem + intermediatePem : leafPem;
  return {
    nginx: encodeURIComponent(leafPem),
    nginxChain: encodeURIComponent(chain),
    envoy: `By=spiffe://cluster.local/ns/default/sa/api;Hash=0123abcd;Cert="${encodeURIComponent(leafPem)}";Chain="${encodeURIComponent(chain)}";Subject="C=NL,O=Tenant;CN=x";URI=`,
    traefik: base64Der(leafPem),
    traefikChain: intermediatePem ? `${base64Der(leafPem)},${base64Der(intermediatePem)}` : base64Der(leafPem),
    traefikEscaped: encodeURIComponent(base64Der(leafPem)),
  };
}
