// CRC-32 (IEEE 802.3: reflected polynomial 0xEDB88320, initial value and final xor
// 0xFFFFFFFF), the checksum of the .xbin container. Chosen because every language has it
// (zlib.crc32, java.util.zip.CRC32, ...) so other readers can check files too, and it
// detects every burst error up to 32 bits.
//
// Speed matters: a ten-million-weight program is tens of megabytes, checksummed once when
// written and once when read. Node's zlib.crc32 (Node >= 20.15, 22.2) is the same CRC in
// native code; older Nodes get a slice-by-8 table loop (eight bytes per step through eight
// derived tables, about 5x the byte-at-a-time loop). Both give the byte-at-a-time result;
// test/backend-container.test.ts checks them against `crc32Bytewise`.

import * as zlib from "node:zlib";

/** T[0] is the classic byte table; T[k][n] is the CRC of byte n followed by k zero bytes. */
const TABLES: Uint32Array[] = (() => {
  const t0 = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t0[n] = c >>> 0;
  }
  const tables = [t0];
  for (let k = 1; k < 8; k++) {
    const prev = tables[k - 1]!;
    const t = new Uint32Array(256);
    for (let n = 0; n < 256; n++) t[n] = (t0[prev[n]! & 0xff]! ^ (prev[n]! >>> 8)) >>> 0;
    tables.push(t);
  }
  return tables;
})();

/** The reference definition, one byte per step (tests compare the fast paths with it). */
export function crc32Bytewise(bytes: Uint8Array): number {
  const t0 = TABLES[0]!;
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = t0[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Slice-by-8: the same CRC, eight bytes per step (for Nodes without zlib.crc32). */
export function crc32Slice8(bytes: Uint8Array): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];
  let c = 0xffffffff;
  const n = bytes.length;
  const end8 = n - (n & 7);
  let i = 0;
  for (; i < end8; i += 8) {
    const lo = (c ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24))) >>> 0;
    c =
      t7[lo & 0xff]! ^
      t6[(lo >>> 8) & 0xff]! ^
      t5[(lo >>> 16) & 0xff]! ^
      t4[lo >>> 24]! ^
      t3[bytes[i + 4]!]! ^
      t2[bytes[i + 5]!]! ^
      t1[bytes[i + 6]!]! ^
      t0[bytes[i + 7]!]!;
  }
  for (; i < n; i++) c = t0[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const nativeCrc32: ((data: Uint8Array, value?: number) => number) | undefined = typeof zlib.crc32 === "function" ? zlib.crc32 : undefined;

/** CRC-32 of `bytes` as an unsigned 32-bit number (crc32("123456789") = 0xCBF43926). */
export function crc32(bytes: Uint8Array): number {
  return nativeCrc32 !== undefined ? nativeCrc32(bytes, 0) >>> 0 : crc32Slice8(bytes);
}
