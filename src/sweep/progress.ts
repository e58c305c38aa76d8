// A one-line progress bar for long sweeps, redrawn in place on a terminal; silent when the
// stream is not a TTY (logs and pipes get no carriage-return noise).

export interface ProgressSink {
  isTTY?: boolean;
  columns?: number;
  write(text: string): boolean;
}

export class ProgressBar {
  private readonly start = Date.now();
  private lastDraw = 0;

  constructor(
    private readonly total: number,
    private readonly label: string,
    private readonly sink: ProgressSink,
    private readonly enabled = sink.isTTY === true,
  ) {}

  update(done: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    // At most ~20 redraws per second, but always the final state.
    if (done < this.total && now - this.lastDraw < 50) return;
    this.lastDraw = now;
    const secs = (now - this.start) / 1000;
    const eta = done > 0 && done < this.total ? `, ~${Math.ceil((secs / done) * (this.total - done))} s left` : "";
    const tail = ` ${done}/${this.total} ${this.label}, ${secs.toFixed(1)} s${eta}`;
    const width = Math.max(10, Math.min(40, (this.sink.columns ?? 80) - tail.length - 4));
    const filled = Math.round((done / Math.max(1, this.total)) * width);
    this.sink.write(`\r[${"#".repeat(filled)}${"-".repeat(width - filled)}]${tail}\x1b[K`);
  }

  finish(): void {
    if (this.enabled) this.sink.write("\n");
  }
}
