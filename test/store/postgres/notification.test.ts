import { expect } from 'chai';
import { parseNotification } from '../../../src/store/postgres/notification.ts';

describe('parseNotification', () => {
  it('gives the OINs of a payload the triggers send', () => {
    expect(parseNotification('oingate:1:["00000001000000000001","00000001000000000002"]')).to.deep.equal([
      '00000001000000000001',
      '00000001000000000002',
    ]);
  });

  it('asks for a full read on the marker, an empty payload, or none', () => {
    for (const payload of ['oingate:1:*', '', undefined]) expect(parseNotification(payload), String(payload)).to.equal(undefined);
  });

  it('asks for a full read on anything not exactly ours', () => {
    const hostile = [
      'garbage',
      'oingate:1:',
      'oingate:1:[]',
      'oingate:1:["a",1]',
      'oingate:1:[""]',
      'oingate:1:{"oin":"x"}',
      'oingate:1:"x"',
      'oingate:1:["x"',
      'oingate:2:["x"]',
      ' oingate:1:["x"]',
      `oingate:1:${JSON.stringify(['x'.repeat(257)])}`,
      `oingate:1:${JSON.stringify(Array.from({ length: 1001 }, (_, i) => String(i)))}`,
    ];
    for (const payload of hostile) expect(parseNotification(payload), payload).to.equal(undefined);
  });
});
