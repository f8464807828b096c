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

/**
 * The process's last line, on stdout, after everything logged before it:
 * the asynchronous destination is flushed first, then the line is written
 * synchronously, so that a process.exit right after can neither drop it nor
 * put it before earlier lines.
 */
export async function logLastLine(logger: Logger, level: string, fields: Record<string, unknown>, message: string): Promise<void> {
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
  const sync = pino.destination({ dest: 1, sync: true });
  createLogger(level, sync).info(fields, message);
  sync.flushSync();
}
