// A worker thread's entry when oingate runs from its TypeScript sources (a
// checkout, through tsx): the thread starts without the main thread's
// loader, so it registers tsx itself, then runs the entry named in its argv.
// The compiled package starts its .js entries directly and never uses this.
import { register } from 'tsx/esm/api';

register();
await import(process.argv[2]);
