// CRC-32 (IEEE 802.3: reflected polynomial 0xEDB88320, initial value and final xor
// 0xFFFFFFFF), the checksum of the .xbin container. Chosen because every language has it
// (zlib.crc32, java.util.zip.CRC32, ...) so other readers can check files too, and it
// detects every burst error up to 32 bits.

const TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 of `bytes` as an unsigned 32-bit number (crc32("123456789") = 0xCBF43926). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
