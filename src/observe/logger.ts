import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/**
 * JSON lines on stdout. Authorization and cookies are never logged: the
 * decision log names the reason, not the credentials.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'oingate' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['authorization', 'headers.authorization', 'headers.cookie', 'secret', 'password'], censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options);
}
