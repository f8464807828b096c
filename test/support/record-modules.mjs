// `node --import` this file: every module URL the process resolves is
// appended, one a line, to the file RECORD_MODULES_TO names. Appended
// at once from the hooks thread, so a process killed later has written all.
import { register } from 'node:module';

const file = process.env.RECORD_MODULES_TO;
if (!file) throw new Error('record-modules: RECORD_MODULES_TO is not set');
register('./record-modules-hooks.mjs', import.meta.url, { data: { file } });
