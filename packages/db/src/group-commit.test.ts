import { describe, expect, it } from 'vitest';
import { createGroupCommit } from './group-commit.js';

/** gate is a promise the test opens by hand. */
function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

describe('createGroupCommit', () => {
  it('commits what queued behind a transaction in one batch per key, and answers each caller only after its commit', async () => {
    const batches: { key: string; items: number[] }[] = [];
    const gates: ReturnType<typeof gate>[] = [];
    const group = createGroupCommit<number, number>(
      async (key, items) => {
        batches.push({ key, items: [...items] });
        const g = gate();
        gates.push(g);
        await g.promise;
        return items.map((i) => i * 10);
      },
      { maxSize: 3 },
    );
    const answered: number[] = [];
    const submit = (key: string, n: number) => group.submit(key, n).then((r) => answered.push(r));
    const all = [submit('a', 1), submit('a', 2), submit('a', 3), submit('a', 4), submit('a', 5), submit('b', 6)];
    await Promise.resolve();
    // The first item of each key goes at once; the rest wait for that commit.
    expect(batches).toEqual([
      { key: 'a', items: [1] },
      { key: 'b', items: [6] },
    ]);
    expect(answered).toEqual([]);
    gates[0]!.open();
    await new Promise((r) => setTimeout(r, 0));
    expect(answered).toEqual([10]);
    // Those that waited go together, at most maxSize of them.
    expect(batches[2]).toEqual({ key: 'a', items: [2, 3, 4] });
    gates[1]!.open();
    gates[2]!.open();
    await new Promise((r) => setTimeout(r, 0));
    expect(batches[3]).toEqual({ key: 'a', items: [5] });
    gates[3]!.open();
    await Promise.all(all);
    expect(answered.sort((x, y) => x - y)).toEqual([10, 20, 30, 40, 50, 60]);
  });

  it("retries a failed batch's items one by one, so one bad item fails only its own caller", async () => {
    const committed: number[][] = [];
    let first = true;
    const group = createGroupCommit<number, string>(
      async (_key, items) => {
        if (first) {
          // Hold the first commit so that the next items queue up into one batch.
          first = false;
          await new Promise((r) => setTimeout(r, 20));
        }
        if (items.includes(13)) throw new Error('13 refused');
        committed.push([...items]);
        return items.map(String);
      },
      { maxSize: 10 },
    );
    const results = await Promise.allSettled([1, 2, 13, 4].map((n) => group.submit('t', n)));
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual(['1', '2', '13 refused', '4']);
    // [2, 13, 4] failed together, then 2 and 4 committed alone.
    expect(committed).toEqual([[1], [2], [4]]);
  });

  it('fails a batch Postgres canceled (statement timeout) as a whole instead of retrying each item behind the same lock', async () => {
    const attempts: number[][] = [];
    let first = true;
    const group = createGroupCommit<number, string>(
      async (_key, items) => {
        attempts.push([...items]);
        if (first) {
          first = false;
          await new Promise((r) => setTimeout(r, 20));
          return items.map(String);
        }
        throw Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' });
      },
      { maxSize: 10 },
    );
    const results = await Promise.allSettled([1, 2, 3, 4].map((n) => group.submit('t', n)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'rejected']);
    // [2, 3, 4] was canceled once, and nothing of it was tried again item by item.
    expect(attempts).toEqual([[1], [2, 3, 4]]);
  });

  it('with gather, callers arriving in one turn at an idle key go in one batch, and the next turn starts the next batch', async () => {
    const batches: number[][] = [];
    const make = (gather: boolean) =>
      createGroupCommit<number, number>(
        async (_key, items) => {
          batches.push([...items]);
          await new Promise((r) => setTimeout(r, 5));
          return items;
        },
        { maxSize: 10, gather },
      );
    // Without it, the first caller goes alone and the rest wait behind its commit.
    const plain = make(false);
    await Promise.all([1, 2, 3].map((n) => plain.submit('t', n)));
    expect(batches).toEqual([[1], [2, 3]]);
    batches.length = 0;
    const gathered = make(true);
    const firstTurn = [1, 2, 3].map((n) => gathered.submit('t', n));
    expect(batches).toEqual([]); // nothing starts within the turn the callers arrived in
    await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([[1, 2, 3]]);
    // One that arrives while that batch commits waits for it, as without gather.
    const later = gathered.submit('t', 4);
    expect(await Promise.all(firstTurn)).toEqual([1, 2, 3]);
    expect(await later).toBe(4);
    expect(batches).toEqual([[1, 2, 3], [4]]);
  });
});
