import { expect } from 'chai';
import { getPriority } from 'node:os';
import { Worker } from 'node:worker_threads';
import { currentThreadId, READER_NICE } from '../../src/store/thread-priority.ts';
import { HAS_THREAD_SELF, niceOf } from '../support/threads.ts';

interface Answer {
  readonly thread: number | undefined;
  readonly nice: number | undefined;
}

describe('lowering a thread’s CPU priority', function () {
  this.timeout(30_000);

  it('names the calling thread by its kernel id: the main thread’s is the process id', function () {
    if (!HAS_THREAD_SELF) this.skip();
    expect(currentThreadId()).to.equal(process.pid);
  });

  it('gives a worker thread a low priority, and that thread alone: the main thread keeps its own', async function () {
    if (!HAS_THREAD_SELF) this.skip();
    const mainBefore = niceOf(process.pid);
    expect(mainBefore).to.be.below(READER_NICE);
    const entry = new URL('../support/priority-thread.ts', import.meta.url).href;
    const worker = new Worker(new URL('../../src/store/ts-worker.mjs', import.meta.url), { argv: [entry], execArgv: [] });
    try {
      const answer = await new Promise<Answer>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      expect(answer.nice).to.equal(READER_NICE);
      expect(answer.thread).to.be.a('number').and.not.equal(process.pid);
      expect(niceOf(answer.thread!)).to.equal(READER_NICE);
      expect(niceOf(process.pid)).to.equal(mainBefore);
      expect(getPriority()).to.equal(mainBefore);
    } finally {
      worker.postMessage('stop');
      await worker.terminate();
    }
  });
});
