// Fuzz surfaces: one per kind of file a user can hand imssa. Each surface has seeds (valid
// files from the repository), a fast-check arbitrary of test cases (mutated seeds, generated
// structures and random bytes) and a `run` that feeds one case to the library's entry points.
//
// The expected outcome of every case is success or a UserError; anything else thrown is a
// bug ("uncaught"). Library functions are passed in (`lib`), so the same surfaces run in
// jest against src/ (test/fuzz-*.test.ts) and in `npm run fuzz` against dist/
// (scripts/fuzz.mjs). This file is plain JavaScript for that reason; types in surfaces.d.mts.

import fc from "fast-check";
import { mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";

// ---- outcomes --------------------------------------------------------------------------------

/** Runs fn and classifies what happened: "ok", "user" (a UserError) or "uncaught". */
export function classify(fn, isUserError) {
  try {
    fn();
    return { outcome: "ok" };
  } catch (e) {
    if (isUserError(e)) {
      // A user error must say something: one clear message, never empty.
      if (typeof e.message !== "string" || e.message.trim() === "") return { outcome: "uncaught", error: new Error("UserError with an empty message") };
      return { outcome: "user", kind: e.kind, message: e.message };
    }
    return { outcome: "uncaught", error: e };
  }
}

// ---- saved cases (the fixed corpus, test/fuzz/corpus/<surface>/) ------------------------------

/** A case as a file: raw bytes (.bin) or JSON with byte arrays as {"$bytes": base64} (.json). */
export function encodeCase(input) {
  if (input instanceof Uint8Array) return { ext: "bin", data: input };
  return { ext: "json", data: `${JSON.stringify(input, (_k, v) => (v instanceof Uint8Array ? { $bytes: Buffer.from(v).toString("base64") } : v), 1)}\n` };
}

export function decodeCase(file, contents) {
  if (file.endsWith(".bin")) return new Uint8Array(contents);
  return JSON.parse(Buffer.from(contents).toString("utf8"), (_k, v) => (v !== null && typeof v === "object" && typeof v.$bytes === "string" ? new Uint8Array(Buffer.from(v.$bytes, "base64")) : v));
}

/** The saved regression cases of a surface: every input a fuzz run once found a bug with. */
export function loadCorpus(root, name) {
  const dir = join(root, "test/fuzz/corpus", name);
  let names = [];
  try {
    names = readdirSync(dir).filter((f) => f.endsWith(".bin") || f.endsWith(".json")).sort();
  } catch {
    return [];
  }
  return names.map((f) => ({ file: join(dir, f), input: decodeCase(f, readFileSync(join(dir, f))) }));
}

// ---- generic mutators ------------------------------------------------------------------------

/** Values that break naive size arithmetic. */
const EXTREME_INTS = [0, 1, 2, 3, 7, 255, 256, 4096, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53, 1e12, -1, -(2 ** 31)];
const EXTREME_U32 = [0, 1, 0x7f, 0xff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

const byteMutation = fc.oneof(
  fc.record({ op: fc.constant("flip"), pos: fc.nat(), bit: fc.nat(7) }),
  fc.record({ op: fc.constant("set"), pos: fc.nat(), value: fc.nat(255) }),
  fc.record({ op: fc.constant("truncate"), pos: fc.nat() }),
  fc.record({ op: fc.constant("insert"), pos: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ op: fc.constant("delete"), pos: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ op: fc.constant("u32"), pos: fc.nat(), value: fc.constantFrom(...EXTREME_U32) }),
  fc.record({ op: fc.constant("copy"), from: fc.nat(), to: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }),
);

/** Applies byte mutations (positions taken modulo the current length). */
export function mutateBytes(bytes, mutations) {
  let b = Uint8Array.from(bytes);
  for (const m of mutations) {
    const n = b.length;
    switch (m.op) {
      case "flip":
        if (n > 0) b[m.pos % n] ^= 1 << m.bit;
        break;
      case "set":
        if (n > 0) b[m.pos % n] = m.value;
        break;
      case "truncate":
        b = b.slice(0, n === 0 ? 0 : m.pos % n);
        break;
      case "insert": {
        const at = n === 0 ? 0 : m.pos % (n + 1);
        const out = new Uint8Array(n + m.bytes.length);
        out.set(b.subarray(0, at));
        out.set(m.bytes, at);
        out.set(b.subarray(at), at + m.bytes.length);
        b = out;
        break;
      }
      case "delete": {
        if (n === 0) break;
        const at = m.pos % n;
        const out = new Uint8Array(n - Math.min(m.len, n - at));
        out.set(b.subarray(0, at));
        out.set(b.subarray(at + m.len), at);
        b = out;
        break;
      }
      case "u32":
        if (n >= 4) new DataView(b.buffer).setUint32(m.pos % (n - 3), m.value, true);
        break;
      case "copy":
        if (n > 0) {
          const from = m.from % n;
          const chunk = b.slice(from, from + m.len);
          b.set(chunk.subarray(0, Math.max(0, n - (m.to % n))), m.to % n);
        }
        break;
    }
  }
  return b;
}

const byteMutations = (max = 6) => fc.array(byteMutation, { minLength: 1, maxLength: max });

/** Every (container, key) slot of a JSON-like value, depth first. */
function slots(value, out = [], depth = 0) {
  if (depth > 12 || value === null || typeof value !== "object") return out;
  for (const key of Array.isArray(value) ? value.keys() : Object.keys(value)) {
    out.push([value, key]);
    slots(value[key], out, depth + 1);
  }
  return out;
}

/** A replacement value for a JSON field: extremes, wrong types, and the infinite number "1e999". */
const jsonValue = fc.oneof(
  fc.constantFrom(...EXTREME_INTS, 0.5, -0.5, 1e-300, 1e300, "__INF__", "__NEGINF__"),
  fc.constantFrom(null, true, false, "", "x", "unlimited", [], {}, [0], [1, 2], { a: 1 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
  fc.string({ maxLength: 8 }),
);

const jsonMutation = fc.record({ slot: fc.nat(), op: fc.nat(5), value: jsonValue, other: fc.nat() });

/** Applies field-level mutations to parsed JSON and returns the text (with "1e999" for infinity). */
export function mutateJson(value, mutations) {
  const root = structuredClone(value);
  for (const m of mutations) {
    const all = slots(root);
    if (all.length === 0) break;
    const [obj, key] = all[m.slot % all.length];
    switch (m.op) {
      case 0: // delete
        if (Array.isArray(obj)) obj.splice(key, 1);
        else delete obj[key];
        break;
      case 1: // duplicate an array element / copy another slot's value here
        if (Array.isArray(obj)) obj.splice(key, 0, structuredClone(obj[key]));
        else {
          const [o2, k2] = all[m.other % all.length];
          obj[key] = structuredClone(o2[k2]);
        }
        break;
      case 2: // numbers: scale or negate; others: replace
        obj[key] = typeof obj[key] === "number" ? [obj[key] * 2, -obj[key], obj[key] + 1, obj[key] - 1, 0][m.other % 5] : m.value;
        break;
      default:
        obj[key] = m.value;
    }
  }
  return JSON.stringify(root).replace(/"__INF__"/g, "1e999").replace(/"__NEGINF__"/g, "-1e999");
}

const jsonMutations = fc.array(jsonMutation, { minLength: 1, maxLength: 4 });

/** Raw text edits on top of JSON (syntax errors, deep nesting, BOMs). */
const textEdit = fc.oneof(
  fc.record({ op: fc.constant("cut"), pos: fc.nat() }),
  fc.record({ op: fc.constant("insert"), pos: fc.nat(), text: fc.constantFrom("{", "}", "[", "]", ",", ":", '"', "\\", "\u0000", "\ufeff", "/*", "1e999", "-", "[".repeat(600), "\n") }),
  fc.record({ op: fc.constant("delete"), pos: fc.nat(), len: fc.integer({ min: 1, max: 20 }) }),
);

function editText(text, edits) {
  let t = text;
  for (const e of edits) {
    const at = t.length === 0 ? 0 : e.pos % (t.length + 1);
    if (e.op === "cut") t = t.slice(0, at);
    else if (e.op === "insert") t = t.slice(0, at) + e.text + t.slice(at);
    else t = t.slice(0, at) + t.slice(at + e.len);
  }
  return t;
}

// ---- seeds -----------------------------------------------------------------------------------

const files = (dir, ext) =>
  readdirSync(dir)
    .filter((f) => f.endsWith(ext))
    .sort()
    .map((f) => join(dir, f));

// ---- surfaces --------------------------------------------------------------------------------

/**
 * Builds the surfaces. `root`: repository root (seeds are read from it); `scratch`: a
 * private temporary directory for cases that need files on disk; `lib`: see surfaces.d.mts.
 */
export function makeSurfaces({ root, scratch, lib }) {
  const surfaces = [];

  // .npy --------------------------------------------------------------------------------------
  {
    const seeds = [...files(join(root, "test/fixtures/npy"), ".npy"), join(root, "examples/tiny-input.npy")].map((f) => readFileSync(f));
    const header = fc.record({
      descr: fc.constantFrom("<f4", "<f8", "|u1", "|i1", "<i8", "<u8", "|b1", "|?", ">f4", "=f8", "<f2", "<c8", "|O", "<U3", "|S4", "<M8[s]", "f4", "<i4"),
      fortran: fc.constantFrom("True", "False", "True", "False", "1", "None"),
      shape: fc.array(fc.oneof(fc.nat(5), fc.constantFrom(0, 2 ** 31, 1e12, 2 ** 53, 2 ** 64, -1, "'a'", "()")), { maxLength: 5 }),
      extra: fc.constantFrom("", " 'x': 1,", " 'shape': (1,),"),
      dataBytes: fc.oneof(fc.nat(256), fc.constant(-1), fc.constant(-1)), // -1: exactly what the shape needs
      version: fc.constantFrom(1, 2, 3),
    });
    const buildNpy = (h, fill) => {
      const shapeText = h.shape.length === 1 ? `(${h.shape[0]},)` : `(${h.shape.join(", ")})`;
      const text = `{'descr': '${h.descr}', 'fortran_order': ${h.fortran}, 'shape': ${shapeText},${h.extra} }`.padEnd(118, " ") + "\n";
      const hb = Buffer.from(text, "latin1");
      const lenBytes = h.version === 1 ? 2 : 4;
      const count = h.shape.every((d) => typeof d === "number" && d >= 0 && d < 1e6) ? h.shape.reduce((a, b) => a * b, 1) : 1;
      const width = Number(/\d+$/.exec(h.descr.replace("?", "1"))?.[0] ?? 1);
      const nData = h.dataBytes === -1 ? Math.min(count * width, 1 << 16) : h.dataBytes;
      const out = new Uint8Array(8 + lenBytes + hb.length + nData).fill(fill);
      out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, h.version, 0]);
      const v = new DataView(out.buffer);
      if (lenBytes === 2) v.setUint16(8, hb.length, true);
      else v.setUint32(8, hb.length, true);
      out.set(hb, 8 + lenBytes);
      return out;
    };
    surfaces.push({
      name: "npy",
      arbitrary: fc.oneof(
        { weight: 3, arbitrary: fc.record({ seed: fc.nat(seeds.length - 1), muts: byteMutations(2) }).map(({ seed, muts }) => mutateBytes(seeds[seed], muts)) },
        { weight: 4, arbitrary: fc.record({ h: header, fill: fc.nat(255) }).map(({ h, fill }) => buildNpy(h, fill)) },
        { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }) },
      ),
      run: (bytes) => {
        const a = lib.parseNpy(bytes, "fuzz.npy");
        lib.toFloat64(a.data);
      },
    });
  }

  // .xbin -------------------------------------------------------------------------------------
  {
    const seeds = [readFileSync(join(root, "test/fixtures/xbin/sample-v1.xbin")), lib.freshProgramBytes()];
    const decodedFresh = lib.decodeProgram(seeds[1], "fresh.xbin");
    /** Rewrites the trailer (length, CRC-32) so a mutated payload passes the envelope checks. */
    const fixTrailer = (bytes) => {
      if (bytes.length < 20) return bytes;
      const payload = bytes.subarray(0, bytes.length - 12);
      const out = Uint8Array.from(bytes);
      const v = new DataView(out.buffer);
      v.setUint32(payload.length, payload.length, true);
      v.setUint32(payload.length + 4, lib.crc32(payload), true);
      out.set([0x49, 0x4d, 0x53, 0x58], payload.length + 8);
      return out;
    };
    // Field-level mutations of the decoded program, re-encoded (checksum valid by construction).
    const FIELDS = [
      (p, v) => (p.io.globalWords = v),
      (p, v) => p.io.inputs[0] && (p.io.inputs[0].size = v),
      (p, v) => p.io.inputs[0] && (p.io.inputs[0].addr = v),
      (p, v) => p.io.stepOutputs[0] && (p.io.stepOutputs[0].size = v),
      (p, v, i) => (p.tiles[i % p.tiles.length].memoryWords = v),
      (p, v, i) => p.crossbars.length && (p.crossbars[i % p.crossbars.length].rows = v),
      (p, v, i) => p.crossbars.length && (p.crossbars[i % p.crossbars.length].cols = v),
      (p, v, i) => p.crossbars.length && (p.crossbars[i % p.crossbars.length].tile = v),
      (p, v, i) => p.crossbars.length && (p.crossbars[i % p.crossbars.length].id = v),
      (p, v, i) => {
        const cs = p.tiles[i % p.tiles.length].constants;
        if (cs.length) cs[i % cs.length].addr = v;
      },
      (p, v) => (p.formatVersion = v % 4),
      (p, v, i) => {
        const t = JSON.parse(p.target.json);
        const keys = slots(t).filter(([o, k]) => typeof o[k] === "number");
        if (keys.length) {
          const [o, k] = keys[i % keys.length];
          o[k] = v;
        }
        p.target.json = JSON.stringify(t);
        p.target.sha256 = lib.sha256Hex(p.target.json);
      },
      (p) => p.tiles.pop(),
      (p) => p.crossbars.pop(),
    ];
    const encodeMutated = (muts) => {
      try {
        const p = structuredClone(decodedFresh);
        for (const m of muts) FIELDS[m.field % FIELDS.length](p, m.value, m.index);
        return lib.encodeProgram(p);
      } catch {
        return seeds[1]; // the encoder refused the mutation (it asserts field ranges): nothing to test
      }
    };
    const fieldMutation = fc.record({ field: fc.nat(), value: fc.constantFrom(0, 1, 2, 63, 64, 65, 4095, 65535, 65536, 2 ** 26 + 1, 2 ** 31 - 1, 2 ** 32 - 1), index: fc.nat() });
    surfaces.push({
      name: "xbin",
      arbitrary: fc.oneof(
        fc.record({ seed: fc.nat(seeds.length - 1), muts: byteMutations() }).map(({ seed, muts }) => mutateBytes(seeds[seed], muts)),
        fc.record({ seed: fc.nat(seeds.length - 1), muts: byteMutations(3) }).map(({ seed, muts }) => fixTrailer(mutateBytes(seeds[seed], muts))),
        fc.array(fieldMutation, { minLength: 1, maxLength: 3 }).map(encodeMutated),
        fc.uint8Array({ maxLength: 512 }).map((b) => (b.length > 8 ? (b.set([0x49, 0x4d, 0x53, 0x41], 4), fixTrailer(b)) : b)),
      ),
      run: (bytes) => {
        const p = lib.decodeProgram(bytes, "fuzz.xbin");
        lib.checkProgram(p, "fuzz.xbin");
        // A program the verifier accepts must run: two steps of one sequence.
        if (p.io.inputs.length === 1) {
          const d = p.io.inputs[0].size;
          lib.runProgram(p, new Float32Array(2 * d).fill(0.5), [1, 2, d], { file: "fuzz.xbin" });
        }
      },
    });
  }

  // target JSON -------------------------------------------------------------------------------
  {
    const seeds = [...files(join(root, "targets"), ".json").filter((f) => !f.endsWith("schema.json")), ...files(join(root, "examples/targets"), ".json")].map((f) =>
      JSON.parse(readFileSync(f, "utf8")),
    );
    const texts = [...files(join(root, "test/fixtures/targets"), ".json")].map((f) => readFileSync(f, "utf8"));
    const model = lib.tinyModel();
    surfaces.push({
      name: "target",
      arbitrary: fc.oneof(
        { weight: 4, arbitrary: fc.record({ seed: fc.nat(seeds.length - 1), muts: jsonMutations }).map(({ seed, muts }) => mutateJson(seeds[seed], muts)) },
        { weight: 1, arbitrary: fc.record({ seed: fc.nat(texts.length - 1), edits: fc.array(textEdit, { maxLength: 3 }) }).map(({ seed, edits }) => editText(texts[seed], edits)) },
        { weight: 1, arbitrary: fc.record({ seed: fc.nat(seeds.length - 1), edits: fc.array(textEdit, { minLength: 1, maxLength: 3 }) }).map(({ seed, edits }) => editText(JSON.stringify(seeds[seed]), edits)) },
      ),
      run: (text) => {
        const target = lib.targetFromJson(text, "fuzz-target.json");
        // A target the loader accepts must compile a small model (or refuse it as a user error).
        lib.compile(model, target);
      },
    });
  }

  // DSL source --------------------------------------------------------------------------------
  {
    const seedFiles = [...files(join(root, "examples"), ".s4d"), ...files(join(root, "test/fixtures/dsl"), ".s4d"), ...files(join(root, "test/fixtures/onnx"), ".s4d")];
    // `rel`: the seed's path from the repository root, so saved cases replay anywhere.
    const seeds = seedFiles.map((f) => ({ rel: relative(root, f), text: readFileSync(f, "utf8") }));
    const TOKEN = /\s+|\/\/[^\n]*|[A-Za-z_][\w.]*|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|"[^"\n]*"|\S/g;
    const VOCAB = ["model", "input", "output", "params", "init", "seed", "from", "repeat", "residual", "prenorm", "postnorm", "linear", "s4d", "gelu", "glu", "meanpool", "layernorm", "relu", "@ternary", "@levels", "(", ")", "{", "}", ";", ",", "=", "[", "]", "N", "modes", "dt_min", "dt_max", "zoh", "bilinear", "lin", "inv", '"trend.safetensors"', '"missing.safetensors"', '"../onnx"', '""', "/*", "\u0000", "é"];
    const NUMBERS = ["0", "-1", "1", "2", "3", "0.5", "1e12", "1e308", "1e999", "2147483648", "4294967296", "9007199254740993", "99999999999999999999999", "100000", "65536", "1e-320"];
    const tokenEdit = fc.record({ op: fc.nat(4), pos: fc.nat(), pick: fc.nat() });
    const mutateSource = (text, edits) => {
      const toks = text.match(TOKEN) ?? [];
      for (const e of edits) {
        const i = toks.length === 0 ? 0 : e.pos % toks.length;
        switch (e.op) {
          case 0:
            toks.splice(i, 1);
            break;
          case 1:
            toks.splice(i, 0, toks[e.pick % Math.max(1, toks.length)] ?? "");
            break;
          case 2: {
            const num = toks.map((t, k) => (/^\d/.test(t) ? k : -1)).filter((k) => k >= 0);
            if (num.length) toks[num[e.pos % num.length]] = NUMBERS[e.pick % NUMBERS.length];
            break;
          }
          case 3:
            toks.splice(i, 0, ` ${VOCAB[e.pick % VOCAB.length]} `);
            break;
          default:
            toks[i] = VOCAB[e.pick % VOCAB.length];
        }
      }
      return toks.join("");
    };
    surfaces.push({
      name: "dsl",
      arbitrary: fc.oneof(
        { weight: 5, arbitrary: fc.record({ seed: fc.nat(seeds.length - 1), edits: fc.array(tokenEdit, { minLength: 1, maxLength: 4 }) }).map(({ seed, edits }) => ({ file: seeds[seed].rel, text: mutateSource(seeds[seed].text, edits) })) },
        { weight: 1, arbitrary: fc.record({ seed: fc.nat(seeds.length - 1), muts: byteMutations(3) }).map(({ seed, muts }) => ({ file: seeds[seed].rel, text: Buffer.from(mutateBytes(Buffer.from(seeds[seed].text), muts)).toString("utf8") })) },
        { weight: 1, arbitrary: fc.string({ maxLength: 200 }).map((text) => ({ file: seeds[0].rel, text })) },
      ),
      run: ({ file, text }) => {
        lib.compileDslSource(text, join(root, file));
      },
    });
  }

  // IR JSON (.json models) --------------------------------------------------------------------
  {
    const seeds = files(join(root, "test/fixtures/ir"), ".json").map((f) => JSON.parse(readFileSync(f, "utf8")));
    const target = lib.targetFromJson(readFileSync(join(root, "targets/xbar64.json"), "utf8"), "xbar64.json");
    const arbitrary = fc.oneof(
      { weight: 4, arbitrary: fc.record({ seed: fc.nat(seeds.length - 1), muts: jsonMutations }).map(({ seed, muts }) => mutateJson(seeds[seed], muts)) },
      { weight: 1, arbitrary: fc.record({ seed: fc.nat(seeds.length - 1), edits: fc.array(textEdit, { minLength: 1, maxLength: 3 }) }).map(({ seed, edits }) => editText(JSON.stringify(seeds[seed]), edits)) },
    );
    surfaces.push({
      name: "ir",
      arbitrary,
      run: (text) => {
        lib.parseModelJson(text, "fuzz.ir.json");
      },
    });
    // Opt-in (`--surface ir-compile`, slow): a model the validator accepts must also compile.
    // It found lowered IR whose S4D matmul coupled two modes passing src/ir/validate.ts and
    // tripping an assertion in quantization (fixed; test/fuzz/corpus/ir-compile/).
    surfaces.push({
      name: "ir-compile",
      optIn: true,
      arbitrary,
      run: (text) => {
        lib.compile(lib.parseModelJson(text, "fuzz.ir.json"), target);
      },
    });
  }

  // ONNX --------------------------------------------------------------------------------------
  {
    const seeds = ["tanh_recurrence_op13.onnx", "tiny_bilinear_op17.onnx", "tiny_zoh_op13.onnx", "prenorm2_op17.onnx", "scan_cls_op17.onnx"].map((f) => readFileSync(join(root, "test/fixtures/onnx", f)));
    const P = lib.onnxProto;
    const decoded = seeds.map((b) => P.ModelProto.decode(b));
    const strings = [...new Set(decoded.flatMap((m) => slots(P.ModelProto.toObject(m)).map(([o, k]) => o[k]).filter((v) => typeof v === "string")))];
    /** Structure-aware mutation: decode, change one field of the message tree, re-encode. */
    const mutateProto = (seed, muts) => {
      const msg = P.ModelProto.decode(seeds[seed]);
      for (const m of muts) {
        const all = slots(msg).filter(([o, k]) => !(o[k] instanceof Uint8Array) && typeof o[k] !== "function");
        if (all.length === 0) break;
        const [obj, key] = all[m.slot % all.length];
        const v = obj[key];
        if (Array.isArray(obj) && m.op === 0) obj.splice(key, 1);
        else if (Array.isArray(obj) && m.op === 1) obj.splice(key, 0, v);
        else if (typeof v === "number" && m.op === 4) obj[key] = [v + 1, v - 1, v * 2, 0, -v][m.value % 5]; // near the valid value
        else if (typeof v === "number" || (v !== null && typeof v === "object" && "low" in v)) obj[key] = EXTREME_INTS[m.value % EXTREME_INTS.length] * (m.op === 2 ? -1 : 1);
        else if (typeof v === "string") obj[key] = strings[m.value % strings.length];
        else if (Array.isArray(v) && m.op === 3) v.length = 0;
        else if (Array.isArray(v) && v.length > 0) v.push(v[m.value % v.length]);
      }
      try {
        return P.ModelProto.encode(msg).finish();
      } catch {
        return seeds[seed];
      }
    };
    const protoMutation = fc.record({ slot: fc.nat(), op: fc.nat(5), value: fc.nat() });
    surfaces.push({
      name: "onnx",
      arbitrary: fc.oneof(
        { weight: 4, arbitrary: fc.record({ seed: fc.nat(seeds.length - 1), muts: fc.array(protoMutation, { minLength: 1, maxLength: 2 }) }).map(({ seed, muts }) => mutateProto(seed, muts)) },
        { weight: 2, arbitrary: fc.record({ seed: fc.nat(seeds.length - 1), muts: byteMutations() }).map(({ seed, muts }) => mutateBytes(seeds[seed], muts)) },
        { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }) },
      ),
      run: (bytes) => {
        lib.compileOnnxBytes(bytes, "fuzz.onnx");
      },
    });
  }

  // safetensors (the DSL's parameter source) --------------------------------------------------
  {
    const pairs = [
      { s4d: join(root, "examples/trend.s4d"), st: join(root, "examples/trend.safetensors") },
      { s4d: join(root, "test/fixtures/onnx/prenorm2.s4d"), st: join(root, "test/fixtures/onnx/prenorm2.safetensors") },
    ].map((p) => ({ ...p, text: readFileSync(p.s4d, "utf8"), bytes: readFileSync(p.st) }));
    /** Header-level mutation: edit the JSON header, keep the data buffer. */
    const mutateHeader = (bytes, muts) => {
      const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
      const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString("utf8"));
      const text = Buffer.from(mutateJson(header, muts), "utf8");
      const data = bytes.subarray(8 + n);
      const out = new Uint8Array(8 + text.length + data.length);
      new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
      out.set(text, 8);
      out.set(data, 8 + text.length);
      return out;
    };
    surfaces.push({
      name: "safetensors",
      arbitrary: fc.oneof(
        { weight: 3, arbitrary: fc.record({ pair: fc.nat(pairs.length - 1), muts: jsonMutations }).map(({ pair, muts }) => ({ pair, bytes: mutateHeader(pairs[pair].bytes, muts) })) },
        { weight: 2, arbitrary: fc.record({ pair: fc.nat(pairs.length - 1), muts: byteMutations() }).map(({ pair, muts }) => ({ pair, bytes: mutateBytes(pairs[pair].bytes, muts) })) },
        { weight: 1, arbitrary: fc.record({ pair: fc.nat(pairs.length - 1), bytes: fc.uint8Array({ maxLength: 256 }) }) },
      ),
      run: ({ pair, bytes }) => {
        const p = pairs[pair];
        lib.decodeSafetensors(bytes, "fuzz.safetensors");
        // And as the model's parameters: every tensor must be checked against what the layers expect.
        lib.compileDslSource(p.text, p.s4d, { readParams: () => lib.decodeSafetensors(bytes, "fuzz.safetensors").tensors });
      },
    });
  }

  // files a .s4d refers to (`params from "..."`) ----------------------------------------------
  {
    const dir = join(scratch, "refs");
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, "subdir"), { recursive: true });
    const trend = readFileSync(join(root, "examples/trend.safetensors"));
    writeFileSync(join(dir, "empty.safetensors"), new Uint8Array(0));
    writeFileSync(join(dir, "trend.safetensors"), trend);
    writeFileSync(join(dir, "model.onnx"), readFileSync(join(root, "test/fixtures/onnx/tanh_recurrence_op13.onnx")));
    try {
      symlinkSync("/dev/zero", join(dir, "zero.safetensors"));
      symlinkSync(join(dir, "nowhere"), join(dir, "dangling.safetensors"));
    } catch {
      // symlinks unavailable: those cases read missing files instead
    }
    const PATHS = ["trend.safetensors", "empty.safetensors", "missing.safetensors", "subdir", ".", "model.onnx", "zero.safetensors", "dangling.safetensors", "/dev/zero", "/dev/null", "/dev/stdin", "/proc/self/mem", "case.safetensors", "subdir/../trend.safetensors", "\u0000x", "a".repeat(300)];
    const source = readFileSync(join(root, "examples/trend.s4d"), "utf8");
    const modelFile = join(dir, "model.s4d");
    surfaces.push({
      name: "s4d-refs",
      arbitrary: fc.record({ path: fc.nat(PATHS.length - 1), muts: byteMutations(3), mutate: fc.boolean() }),
      run: ({ path, muts, mutate }) => {
        const name = PATHS[path];
        if (name === "case.safetensors") writeFileSync(join(dir, name), mutate ? mutateBytes(trend, muts) : trend);
        lib.compileDslSource(source.replace('"trend.safetensors"', JSON.stringify(name)), modelFile);
      },
    });
  }

  return surfaces;
}
