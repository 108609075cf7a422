/**
 * The value codec's wire format, in one place.
 *
 * Wire format: a message is one value; a value is a tag byte, then its payload.
 * Integers are little-endian; `var` is an unsigned LEB128 varint; `str` is
 * var(length << 1 | wide), then `length` latin1 bytes (wide = 0) or `length` UTF-16LE
 * code units (wide = 1), so lone surrogates survive.
 *
 *   0x80 | n   the integer n, 0..127             (no payload)
 *   UNDEFINED NULL FALSE TRUE                      (no payload)
 *   INT32      i32                                 other int32s (never -0)
 *   FLOAT64    f64                                 every other number
 *   STRING     str
 *   BYTES      var(n) n bytes                      Uint8Array and Buffer → fresh Uint8Array
 *   HANDLE     HANDLE_WORDS × i32                  hooks.encodeHandle / decodeHandle
 *   OBJECT     var(n) n × (str key, value)         plain object, null prototype included
 *   ARRAY      var(len) len × value extras         array without holes
 *   HOLEY      var(len) len × (value | HOLE) extras
 *   SPARSE     var(len) var(n) n × (var index, value) extras   mostly holes
 *              extras = var(m) m × (str key, value): an array's non-index properties
 *   V8         first byte only: var(n) n × (HANDLE_WORDS × i32, route), then a node:v8
 *              Serializer stream (header included) of the value with each handle
 *              replaced by a placeholder; route = var(steps) steps × (u8 kind, key),
 *              key = str for STEP_PROP, else var (STEP_ kinds below).
 */

/** Objects with `[HANDLE_BRAND] === true` are channel handles. */
export const HANDLE_BRAND: unique symbol = Symbol.for('occam.handle');

/** How many int32 words identify a channel handle on the wire. */
export const HANDLE_WORDS = 6;

export interface HandleHooks {
  /** Called for each channel handle met while encoding; returns exactly HANDLE_WORDS int32 words that identify it. */
  encodeHandle(handle: object): ArrayLike<number>;
  /** Rebuilds a handle from its words while decoding (`words` is a fresh array the hook may keep). */
  decodeHandle(words: Int32Array): unknown;
}

/** The largest encoding the scratch buffer will grow to; the channel layer may set a lower limit. */
export const CODEC_MAX_BYTES = 2 ** 30;
/**
 * Deepest nesting a value may have (objects, arrays, maps, sets, error causes inside each
 * other): the decoders recurse, and a thread with a small stack (main's is ~1 MB, a worker's
 * 4 MB) must be able to take whatever another sends. Deeper fails at the send, ERR_NOT_SENDABLE.
 */
export const CODEC_MAX_DEPTH = 1000;

export const HANDLE_BYTES = HANDLE_WORDS * 4;

// Tags.
export const T_UNDEFINED = 0x00;
export const T_NULL = 0x01;
export const T_FALSE = 0x02;
export const T_TRUE = 0x03;
export const T_INT32 = 0x04;
export const T_FLOAT64 = 0x05;
export const T_STRING = 0x06;
export const T_BYTES = 0x07;
export const T_HANDLE = 0x08;
export const T_OBJECT = 0x09;
export const T_ARRAY = 0x0a;
export const T_HOLEY = 0x0b;
export const T_SPARSE = 0x0c;
export const T_HOLE = 0x0d;
export const T_V8 = 0x0e;
export const T_SMALL_INT = 0x80;

/** Route step kinds: how to go from a container to one of its parts. */
export const STEP_PROP = 0; // key: property name (objects, arrays' extra props, an error's cause)
export const STEP_MAP_KEY = 1; // key: entry number
export const STEP_MAP_VALUE = 2; // key: entry number
export const STEP_SET = 3; // key: element number
export const STEP_INDEX = 4; // key: array index
