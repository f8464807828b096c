import type { Logger } from '../observe/logger.ts';
import { validationRules, type Settings } from '../settings.ts';
import { FileSource, type FileSourceOptions } from './file.ts';
import type { WhitelistSource } from './source.ts';

/** The store OINGATE_STORE names, for the gate and the command line alike. */
export async function createSource(settings: Settings, logger?: Logger, fileOptions?: FileSourceOptions): Promise<WhitelistSource> {
  // The reading thread validates a large file's tenants under the very rules the build applies.
  if (settings.store.kind === 'file') return new FileSource(settings.store.path, { validation: validationRules(settings), ...fileOptions });
  // Loaded only for a PostgreSQL store: a file-store start need not load pg.
  const { PostgresSource } = await import('./postgres/source.ts');
  return new PostgresSource({
    connectionString: settings.store.url,
    resyncSeconds: settings.pgResyncSeconds,
    ...(logger ? { logger: logger.child({ component: 'postgres' }) } : {}),
  });
}
