/** Whether a JWKS may be fetched from `url` (ignoring credentials, checked apart). */
export function isAllowedJwksScheme(url: URL): boolean {
  if (url.protocol === 'https:') return true;
  const host = url.hostname;
  // Plain http only to loopback: tests and sidecars, never across a network.
  const loopback = host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
  return url.protocol === 'http:' && loopback;
}

/** https anywhere; plain http only to a loopback address; never with credentials. */
export function isAllowedJwksUrl(url: URL): boolean {
  return !url.username && !url.password && isAllowedJwksScheme(url);
}
