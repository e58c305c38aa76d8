// Scalar complex arithmetic in float64 for precomputation (S4D discretization, convolution
// kernels). Values are small immutable records; hot loops work on split re/im arrays instead.

export interface Complex {
  readonly re: number;
  readonly im: number;
}

export function complex(re: number, im = 0): Complex {
  return { re, im };
}

export function cadd(a: Complex, b: Complex): Complex {
  return { re: a.re + b.re, im: a.im + b.im };
}

export function csub(a: Complex, b: Complex): Complex {
  return { re: a.re - b.re, im: a.im - b.im };
}

export function cmul(a: Complex, b: Complex): Complex {
  return { re: a.re * b.re - a.im * b.im, im: a.re * b.im + a.im * b.re };
}

export function cscale(a: Complex, s: number): Complex {
  return { re: a.re * s, im: a.im * s };
}

/** a / b by Smith's algorithm, which avoids overflow/underflow in |b|^2. */
export function cdiv(a: Complex, b: Complex): Complex {
  if (Math.abs(b.re) >= Math.abs(b.im)) {
    const r = b.im / b.re;
    const den = b.re + b.im * r;
    return { re: (a.re + a.im * r) / den, im: (a.im - a.re * r) / den };
  }
  const r = b.re / b.im;
  const den = b.re * r + b.im;
  return { re: (a.re * r + a.im) / den, im: (a.im * r - a.re) / den };
}

export function cexp(z: Complex): Complex {
  const m = Math.exp(z.re);
  return { re: m * Math.cos(z.im), im: m * Math.sin(z.im) };
}

/**
 * exp(z) - 1 without the cancellation of forming exp(z) first, which would lose most digits
 * of ZOH's dB = B (exp(dt A) - 1) / A for small dt*A.
 * Re = expm1(x) cos y - 2 sin^2(y/2), Im = exp(x) sin y.
 */
export function cexpm1(z: Complex): Complex {
  const s = Math.sin(z.im / 2);
  return { re: Math.expm1(z.re) * Math.cos(z.im) - 2 * s * s, im: Math.exp(z.re) * Math.sin(z.im) };
}

export function cabs(z: Complex): number {
  return Math.hypot(z.re, z.im);
}

/** Principal logarithm. */
export function clog(z: Complex): Complex {
  return { re: Math.log(cabs(z)), im: Math.atan2(z.im, z.re) };
}
