/**
 * RecordingBudget bounds the memory all call recordings of this replica hold at once (audio not
 * yet sealed, sealed chunks waiting to be written, an S3 part being filled): a recording reserves
 * before it holds more, and one refused a reservation stops (over_budget) instead of growing the
 * process towards its memory limit.
 */
export class RecordingBudget {
  readonly limitBytes: number;
  #used = 0;

  constructor(limitBytes: number) {
    this.limitBytes = limitBytes;
  }

  /** usedBytes is what the recordings hold now. */
  get usedBytes(): number {
    return this.#used;
  }

  /** tryReserve takes `bytes` from the budget; false (and nothing taken) when it would go over. */
  tryReserve(bytes: number): boolean {
    if (this.#used + bytes > this.limitBytes) return false;
    this.#used += bytes;
    return true;
  }

  /** release gives back what a recording no longer holds. */
  release(bytes: number): void {
    this.#used = Math.max(0, this.#used - bytes);
  }
}
