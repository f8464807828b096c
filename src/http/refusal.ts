/** The statuses oingate answers itself, with the contract's error codes. */
export const ERROR_CODES = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  408: 'request_timeout',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  417: 'expectation_failed',
  421: 'misdirected_request',
  422: 'unprocessable',
  429: 'too_many_requests',
  431: 'headers_too_large',
  500: 'internal_error',
  502: 'bad_gateway',
  503: 'unavailable',
  504: 'gateway_timeout',
} as const;

export type RefusalStatusCode = keyof typeof ERROR_CODES;

// One fixed message per status: the caller never learns which check failed.
const MESSAGES: Record<RefusalStatusCode, string> = {
  400: 'The request is malformed.',
  401: 'A valid bearer token is required.',
  403: 'Access denied.',
  404: 'Not found.',
  405: 'Method not allowed.',
  408: 'The request did not arrive in time.',
  413: 'The request body is too large.',
  415: 'The request body must be JSON without content-encoding.',
  417: 'Only Expect: 100-continue is supported.',
  421: 'This host name is not served here.',
  422: 'The request was understood but refused.',
  429: 'Too many requests.',
  431: 'The request headers are too large or too many.',
  500: 'Internal error.',
  502: 'The upstream service failed.',
  503: 'The service is not available.',
  504: 'The upstream service did not answer in time.',
};

/**
 * A request refused before it reached the decision chain or the upstream
 * (body, media type, upstream failure). `reason` is precise and goes to the
 * log only.
 */
export class Refusal extends Error {
  readonly code = 'ERR_REFUSED';
  constructor(
    readonly status: RefusalStatusCode,
    readonly reason: string,
  ) {
    super(`${status} ${reason}`);
    this.name = 'Refusal';
  }
}

export function refusalBody(status: RefusalStatusCode, requestId: string): string {
  return JSON.stringify({ error: ERROR_CODES[status], message: MESSAGES[status], requestId });
}
