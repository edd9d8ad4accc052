/**
 * Progress is a one-line indicator on stderr for long jobs (export, verify): redrawn in place on a
 * terminal, silent otherwise, so that neither a pipe's reader nor stdout ever sees it.
 */
export class Progress {
  private last = 0;
  private shown = false;

  constructor(
    private readonly stderr: NodeJS.WriteStream,
    private readonly label: string,
    private readonly total?: number,
  ) {}

  /** update redraws at most ten times a second. */
  update(done: number, unit: string): void {
    if (this.stderr.isTTY !== true) return;
    const now = Date.now();
    if (now - this.last < 100) return;
    this.last = now;
    this.shown = true;
    const pct = this.total !== undefined && this.total > 0 ? ` ${Math.min(100, Math.floor((done / this.total) * 100))}%` : '';
    this.stderr.write(`\r${this.label}:${pct} ${done} ${unit}\u001b[K`);
  }

  /** end clears the line. */
  end(): void {
    if (this.shown) this.stderr.write('\r\u001b[K');
  }
}
