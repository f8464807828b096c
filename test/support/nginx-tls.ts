/**
 * A real nginx terminating mutual TLS in front of oingate's forward-auth
 * mode, configured as the README's recipe: nginx asks for a client
 * certificate, hands it to oingate in `X-Client-Cert` as
 * `$ssl_client_escaped_cert`, and oingate verifies it itself.
 */
import { startNginx } from './nginx.ts';

export interface NginxTlsOptions {
  readonly gateUrl: string;
  readonly upstreamUrl: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** The CA names nginx sends with its certificate request (the same bundle oingate verifies against). */
  readonly clientCaFile: string;
}

export interface NginxTls {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

/** The server block of the README recipe, with this test's paths and ports. */
export function nginxMtlsServer(options: NginxTlsOptions & { readonly port: number }): string {
  const gate = new URL(options.gateUrl);
  const upstream = new URL(options.upstreamUrl);
  return `  server {
    listen 127.0.0.1:${options.port} ssl;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate ${options.certFile};
    ssl_certificate_key ${options.keyFile};
    # Ask for a client certificate but let oingate judge it (bundle, dates, CRLs):
    # a bad one then gets oingate's 403 and a decision log line, not a handshake error.
    ssl_client_certificate ${options.clientCaFile};
    ssl_verify_client optional_no_ca;

    location / {
      auth_request /_oingate;
      auth_request_set $oingate_oin $upstream_http_x_authenticated_oin;
      proxy_set_header X-Authenticated-Oin $oingate_oin;
      # The client must never be able to send these to the API itself.
      proxy_set_header X-Client-Cert "";
      proxy_pass http://${upstream.host};
    }

    location = /_oingate {
      internal;
      proxy_pass http://${gate.host};
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      # Replaces any X-Client-Cert the client sent; empty (so not sent) without a certificate.
      proxy_set_header X-Client-Cert $ssl_client_escaped_cert;
    }
  }
`;
}

/**
 * Starts nginx with the recipe on a free loopback port, through the same
 * starter as the plain recipe tests; resolves once it accepts connections.
 */
export async function startNginxTls(options: NginxTlsOptions): Promise<NginxTls> {
  const nginx = await startNginx((port) => nginxMtlsServer({ ...options, port }));
  return { url: `https://127.0.0.1:${nginx.port}`, port: nginx.port, stop: () => nginx.close() };
}
