/** Where progress goes: process.stderr, or a test's capture. */
export interface ProgressStream {
  isTTY?: boolean;
  write(text: string): unknown;
}

const WIDTH = 30;

/**
 * A progress bar on stderr for long selections. On a terminal it redraws one line
 * (`label [#####.....] 120/500 24%`) at most ten times a second; elsewhere (a pipe, a log
 * file, `kubectl logs`) it prints a plain line at every tenth of the way, so logs stay short.
 * Nothing is printed for totals below `minTotal`.
 */
export class Progress {
  private done = 0;
  private lastDecile = 0;
  private lastDraw = 0;
  private shown = false;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly stream: ProgressStream = process.stderr,
    private readonly minTotal = 100,
  ) {}

  advance(n: number): void {
    this.done = Math.min(this.total, this.done + n);
    if (this.total < this.minTotal) return;
    if (this.stream.isTTY) {
      const now = Date.now();
      if (now - this.lastDraw < 100 && this.done < this.total) return;
      this.lastDraw = now;
      const filled = Math.round((this.done / this.total) * WIDTH);
      this.stream.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}] ${this.line()}`);
      this.shown = true;
      return;
    }
    const decile = Math.floor((this.done / this.total) * 10);
    if (decile > this.lastDecile) {
      this.lastDecile = decile;
      this.stream.write(`${this.label}: ${this.line()}\n`);
    }
  }

  /** Ends the bar's line on a terminal, so the next output starts on its own line. */
  finish(): void {
    if (this.shown) this.stream.write('\n');
    this.shown = false;
  }

  private line(): string {
    return `${this.done}/${this.total} ${Math.floor((this.done / this.total) * 100)}%`;
  }
}
