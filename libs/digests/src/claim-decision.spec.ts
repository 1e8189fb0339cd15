import { type ClaimWatch, decideClaim } from './claim-decision.js';

const ROW = { subscriberId: '7', subscriptionId: '70' };
const DIGEST = 'd:42';

/** Notices of epoch `epoch` holding `heard` keys, each heard after mark 5. */
function watch(heard: string[] = [], epoch = 1, claimedInEpoch = 1): ClaimWatch {
  return {
    notices: { epoch, since: (key, mark) => mark === 5 && heard.includes(key) },
    epoch: claimedInEpoch,
    mark: 5,
  };
}

describe('decideClaim', () => {
  it('sends a claimed row when nothing was heard since the claim, or nobody listened', () => {
    expect(decideClaim('claimed', ROW, false, watch(), DIGEST)).toBe('send');
    expect(decideClaim('claimed', ROW, false, null, DIGEST)).toBe('send');
  });

  it('stops when the digest stopped: at the claim, or by a notice heard since', () => {
    expect(decideClaim('stopped', ROW, false, watch(), DIGEST)).toBe('stop');
    expect(decideClaim('stopped', ROW, true, null, DIGEST)).toBe('stop');
    expect(decideClaim('claimed', ROW, false, watch([DIGEST]), DIGEST)).toBe('stop');
  });

  it('passes a row another attempt holds', () => {
    expect(decideClaim('taken', ROW, false, watch(), DIGEST)).toBe('pass');
    expect(decideClaim('taken', ROW, true, null, DIGEST)).toBe('pass');
  });

  it('skips a row refused at the claim, or whose subscription or subscriber was revoked since', () => {
    expect(decideClaim('ineligible', ROW, false, null, DIGEST)).toBe('skip');
    expect(decideClaim('ineligible', ROW, true, watch([DIGEST]), DIGEST)).toBe('skip');
    expect(decideClaim('claimed', ROW, false, watch(['n:70']), DIGEST)).toBe('skip');
    expect(decideClaim('claimed', ROW, false, watch(['s:7']), DIGEST)).toBe('skip');
    // Another reader's notice changes nothing for this one.
    expect(decideClaim('claimed', ROW, false, watch(['n:71', 's:8']), DIGEST)).toBe('send');
  });

  it('halts a claimed row while the batch breaks off, before reading any notice', () => {
    expect(decideClaim('claimed', ROW, true, null, DIGEST)).toBe('halt');
    expect(decideClaim('claimed', ROW, true, watch([DIGEST], 2), DIGEST)).toBe('halt');
  });

  it('requeues a claimed row when the notices restarted since the claim (a cancel heard first still stops)', () => {
    expect(decideClaim('claimed', ROW, false, watch([], 2), DIGEST)).toBe('requeue');
    expect(decideClaim('claimed', ROW, false, watch(['n:70'], 2), DIGEST)).toBe('requeue');
    expect(decideClaim('claimed', ROW, false, watch([DIGEST], 2), DIGEST)).toBe('stop');
  });
});
