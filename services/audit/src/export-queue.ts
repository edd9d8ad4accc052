// The bounded hand-over between an export's database reader and the response stream.

/** Push hands one item to the consumer; it waits while the queue is full. */
export type Push<T> = (item: T) => Promise<void>;

/** QueueLimits bound the queue: the producer waits at `high` items and resumes below `low`. */
export interface QueueLimits {
  readonly high: number;
  readonly low: number;
}

/** StreamAbandoned is what a waiting push throws once the consumer has stopped: the producer unwinds. */
export class StreamAbandoned extends Error {
  constructor() {
    super('the consumer stopped reading');
    this.name = 'StreamAbandoned';
  }
}

/**
 * streamFromProducer runs `produce` (which reads inside one transaction, so one snapshot) and
 * yields what it pushes, in order. The producer runs ahead at most `high` items, so a long
 * chain never sits in memory and the stream's back-pressure reaches the database reads. The
 * producer's failure is thrown to the consumer after the items before it. When the consumer
 * stops early, the producer's next push throws StreamAbandoned, so its transaction ends.
 */
export async function* streamFromProducer<T>(
  produce: (push: Push<T>) => Promise<void>,
  limits: QueueLimits = { high: 256, low: 64 },
): AsyncGenerator<T> {
  const queue: T[] = [];
  let done = false;
  let abandoned = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  let resume: (() => void) | undefined;
  const push: Push<T> = async (item) => {
    if (abandoned) throw new StreamAbandoned();
    queue.push(item);
    wake?.();
    if (queue.length >= limits.high) await new Promise<void>((r) => (resume = r));
    if (abandoned) throw new StreamAbandoned();
  };
  const producer = produce(push).then(
    () => {
      done = true;
      wake?.();
    },
    (err: unknown) => {
      failure = err;
      done = true;
      wake?.();
    },
  );
  try {
    for (;;) {
      const item = queue.shift();
      if (item !== undefined) {
        if (queue.length < limits.low) {
          resume?.();
          resume = undefined;
        }
        yield item;
        continue;
      }
      if (done) break;
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
    }
    if (failure !== undefined) throw failure;
  } finally {
    abandoned = !done;
    resume?.();
    await producer;
  }
}
