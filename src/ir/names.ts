// Fresh value and state names for passes that add ops: a name collides with nothing the
// model already has or the pass handed out before.

export class NameSource {
  private readonly taken = new Set<string>();
  constructor(names: Iterable<string>) {
    for (const n of names) this.taken.add(n);
  }
  fresh(base: string): string {
    let name = base;
    for (let k = 1; this.taken.has(name); k++) name = `${base}.${k}`;
    this.taken.add(name);
    return name;
  }
}
