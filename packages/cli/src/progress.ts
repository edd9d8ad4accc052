const BAR_WIDTH = 24;

/**
 * Progress is a one-line indicator on stderr for long jobs (export, verify, privacy jobs): a bar
 * with a percentage when the total is known, a count otherwise, redrawn in place on a terminal and
 * silent otherwise, so that neither a pipe's reader nor stdout ever sees it.
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
    this.stderr.write(`\r${this.line(done, unit)}\u001b[K`);
  }

  /** line is what update draws: `label [#####-----]  42% 1200/2900 bytes`, or `label: 1200 lines`. */
  line(done: number, unit: string): string {
    if (this.total === undefined || this.total <= 0) return `${this.label}: ${done} ${unit}`;
    const fraction = Math.min(1, done / this.total);
    const filled = Math.round(fraction * BAR_WIDTH);
    const pct = `${Math.floor(fraction * 100)}%`.padStart(4);
    return `${this.label} [${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${pct} ${done}/${this.total} ${unit}`;
  }

  /** end clears the line. */
  end(): void {
    if (this.shown) this.stderr.write('\r\u001b[K');
  }
}
