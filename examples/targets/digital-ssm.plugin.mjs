// Target plugin of examples/targets/digital-ssm.json (walk-through: docs/TARGETS.md,
// "Plugin targets"). It models a digital complex multiply-accumulate unit next to each tile's
// vector unit and moves every S4D layer's diagonal state update there:
//
//   x_k = dA ⊙ x_{k-1} + dB u_k (+ c)  per complex mode, in float32 (this unit)
//   y_k = 2 Re(C dA x_{k-1}) + (2 Re(C dB) + D) u_k   on the crossbars, as on xbar64
//
// so the recurrence is not quantized at all (no weight levels, DAC or ADC on the state path),
// while the readout keeps the crossbar numerics. Compare both mappings with
//   npx imssa-compile examples/digits.s4d --compare xbar64,./examples/targets/digital-ssm.json
//
// Plain JavaScript (ESM) so it loads on a fresh clone without a build; typed with JSDoc against
// the plugin interface in src/target/plugin.ts (editors and `tsc --checkJs` check it).

/** @typedef {import("../../src/target/plugin.js").TargetPlugin} TargetPlugin */
/** @typedef {import("../../src/target/plugin.js").ExtOperands} ExtOperands */

/** Complex MACs the unit starts per cycle. */
const LANES = 4;
/** Pipeline depth of one complex MAC: multiply, add, round (cycles until the first result). */
const PIPELINE_CYCLES = 3;
/**
 * Real operations per complex mode: (ar + i ai)(xr + i xi) is 4 multiplies and 2 adds,
 * (br + i bi) u is 2 multiplies, adding the two is 2 adds, adding c is 2 more.
 */
const OPS_PER_MODE = 12;
/**
 * Words of the constant table per mode: ar, ai (dA), br, bi (dB), cr, ci (a constant input:
 * front ends fold affine ops before the layer into it; zero for DSL models).
 */
const TABLE_WORDS = 6;
/** The largest mode count per instruction: its table (6 words per mode) must fit 16-bit addressing. */
const MAX_MODES_PER_INSTRUCTION = 10922;

const f = Math.fround;

/**
 * cmac's operands: len = complex modes n, word = modes per channel M (n a multiple of M, and
 * the window starts at a channel boundary), a = state x_{k-1} (2n words, [re, im] per mode),
 * b = u_k (n / M words, one per channel), c = table (6n words: ar, ai, br, bi, cr, ci per mode),
 * dst = x_k (2n words).
 * @param {ExtOperands} o
 */
function cmacShape(o) {
  if (o.word < 1 || o.len < 1 || o.len % o.word !== 0) throw new Error(`cmac: len ${o.len} must be a positive multiple of word (modes per channel) ${o.word}`);
  if (o.len > MAX_MODES_PER_INSTRUCTION) throw new Error(`cmac: len ${o.len} exceeds ${MAX_MODES_PER_INSTRUCTION} modes per instruction`);
  return { modes: o.len, channels: o.len / o.word };
}

/** @type {TargetPlugin} */
const plugin = {
  name: "digital-ssm",
  version: "1.0.0",
  description: "Digital float32 complex-MAC unit per tile for the diagonal S4D state update",
  instructions: [
    {
      id: 1,
      mnemonic: "cmac",
      doc: "x_k = dA * x_{k-1} + dB * u_k + c per complex mode, float32, every product and sum rounded",
      access(o) {
        const { modes, channels } = cmacShape(o);
        return { reads: { a: 2 * modes, b: channels, c: TABLE_WORDS * modes }, writes: 2 * modes };
      },
      execute(io, o) {
        const { modes } = cmacShape(o);
        const x = io.read("a");
        const u = io.read("b");
        const t = io.read("c");
        const out = new Float64Array(2 * modes);
        for (let i = 0; i < modes; i++) {
          const uh = u[Math.floor(i / o.word)];
          const k = TABLE_WORDS * i;
          const [ar, ai, br, bi, cr, ci] = [t[k], t[k + 1], t[k + 2], t[k + 3], t[k + 4], t[k + 5]];
          const xr = x[2 * i];
          const xi = x[2 * i + 1];
          // float32 datapath: each product and each sum is rounded (no fused multiply-add).
          const re = f(f(f(f(ar * xr) - f(ai * xi)) + f(br * uh)) + cr);
          const im = f(f(f(f(ai * xr) + f(ar * xi)) + f(bi * uh)) + ci);
          out[2 * i] = re;
          out[2 * i + 1] = im;
        }
        io.write(out);
      },
      cycles(o) {
        return PIPELINE_CYCLES + Math.ceil(cmacShape(o).modes / LANES);
      },
      events(o) {
        const { modes, channels } = cmacShape(o);
        // Priced by the target: energy.vectorOpPj per operation, energy.localWordPj per word.
        return { vectorElementOps: OPS_PER_MODE * modes, localWords: 2 * modes + channels + TABLE_WORDS * modes + 2 * modes };
      },
    },
  ],
  lowerS4dState(layer, out) {
    const { channels: H, modes: M } = layer;
    const table = new Float64Array(TABLE_WORDS * H * M);
    const c = layer.bias;
    for (let i = 0; i < H * M; i++) table.set([layer.dA.re[i], layer.dA.im[i], layer.dB.re[i], layer.dB.im[i], c ? c.re[i] : 0, c ? c.im[i] : 0], TABLE_WORDS * i);
    const consts = out.constant(table);
    // Whole channels per instruction, as many as the 16-bit operand windows allow.
    const perInstruction = Math.max(1, Math.floor(MAX_MODES_PER_INSTRUCTION / M));
    for (let h0 = 0; h0 < H; h0 += perInstruction) {
      const ch = Math.min(perInstruction, H - h0);
      const n = ch * M;
      out.emit("cmac", {
        len: n,
        word: M,
        dst: layer.output.at(2 * h0 * M, 2 * n),
        a: layer.state.at(2 * h0 * M, 2 * n),
        b: layer.input.at(h0, ch),
        c: consts.at(TABLE_WORDS * h0 * M, TABLE_WORDS * n),
      });
    }
  },
};

export default plugin;
