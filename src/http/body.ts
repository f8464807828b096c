import type { IncomingMessage } from 'node:http';
import getRawBody from 'raw-body';
import { Refusal } from './refusal.ts';

// application/json or application/<anything>+json; parameters after ';'.
const JSON_MEDIA_TYPE = /^application\/(?:json|[a-z0-9!#$&^_.-]+\+json)$/;
const UTF8_CHARSET = /^"?utf-8"?$/i;

function hasBody(request: IncomingMessage): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function checkMediaType(request: IncomingMessage): void {
  const encoding = request.headers['content-encoding'];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
    throw new Refusal(415, 'content_encoding');
  }
  const [type = '', ...parameters] = (request.headers['content-type'] ?? '').split(';');
  if (!JSON_MEDIA_TYPE.test(type.trim().toLowerCase())) throw new Refusal(415, 'media_type');
  for (const parameter of parameters) {
    const [name = '', value = ''] = parameter.split('=');
    if (name.trim().toLowerCase() === 'charset' && !UTF8_CHARSET.test(value.trim())) {
      throw new Refusal(415, 'charset');
    }
  }
}

/**
 * Reads the request body as the exact bytes the client sent, so the upstream
 * receives them unchanged. Refuses before reading when the declared length is
 * over the limit, and stops reading as soon as the limit is passed.
 */
export async function readBody(request: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  if (!hasBody(request)) return undefined;
  checkMediaType(request);
  try {
    const length = request.headers['content-length'];
    return await getRawBody(request, { limit, ...(length !== undefined ? { length } : {}) });
  } catch (error) {
    const type = (error as { type?: string }).type;
    if (type === 'entity.too.large') throw new Refusal(413, 'body_too_large');
    throw new Refusal(400, type === 'request.aborted' ? 'body_aborted' : 'body_unreadable');
  }
}
