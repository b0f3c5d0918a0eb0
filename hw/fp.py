"""Combinational IEEE-754 arithmetic on encodings (any exponent/fraction widths), shared by the near-memory units.

Rules of both operators: round to nearest even once from the exact result; subnormal inputs and results exact
(no flush to zero); overflow rounds to infinity; every NaN result is the canonical quiet NaN (exponent all ones,
fraction MSB set, sign 0), the input NaN's sign and payload are not propagated.

* `fp_add`: ``inf + (-inf)`` is NaN; an exact zero sum is ``+0`` except ``(-0) + (-0) = -0``.
* `fp_mul`: the sign is the XOR of the signs (zeros and infinities included); ``0 * inf`` is NaN.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed


def fp_add(m: Module, a: Value, b: Value, ebits: int, mbits: int, name: str) -> Signal:
    """Combinational IEEE addition of encodings ``a`` and ``b`` (rules in the module docstring).

    The larger magnitude ``x`` keeps three extra bits (guard, round, sticky) after the smaller ``y`` is aligned
    to it; the sum or difference is normalised (left shifts stop at the smallest exponent, giving subnormals)
    and rounded to nearest even once. Three extra bits suffice: bits are lost to the sticky only when the
    exponents differ by two or more, and then a difference needs at most one bit of left shift.
    """
    width = 1 + ebits + mbits
    emax = (1 << ebits) - 1
    ext = mbits + 4  # significand with hidden bit and guard/round/sticky bits

    def sig(prefix: str, shape: int) -> Signal:
        return Signal(shape, name=f"{name}_{prefix}")

    sa, sb = a[width - 1], b[width - 1]
    ea, eb = a[mbits:width - 1], b[mbits:width - 1]
    fa, fb = a[:mbits], b[:mbits]
    a_nan = (ea == emax) & (fa != 0)
    b_nan = (eb == emax) & (fb != 0)
    a_inf = (ea == emax) & (fa == 0)
    b_inf = (eb == emax) & (fb == 0)

    swap = sig("swap", 1)
    m.d.comb += swap.eq(b[:width - 1] > a[:width - 1])
    x, y = sig("x", width), sig("y", width)
    m.d.comb += [x.eq(Mux(swap, b, a)), y.eq(Mux(swap, a, b))]
    ex, ey = x[mbits:width - 1], y[mbits:width - 1]
    exp_x, exp_y = sig("exp_x", ebits), sig("exp_y", ebits)
    m.d.comb += [exp_x.eq(Mux(ex == 0, 1, ex)), exp_y.eq(Mux(ey == 0, 1, ey))]
    man_x, man_y = Cat(x[:mbits], ex != 0), Cat(y[:mbits], ey != 0)

    # Align y onto x: shift right by the exponent difference (clamped), collecting the shifted-out bits.
    diff = sig("diff", ebits)
    m.d.comb += diff.eq(exp_x - exp_y)
    dist = sig("dist", range(ext + 1))
    m.d.comb += dist.eq(Mux(diff > ext, ext, diff))
    wide = sig("wide", 2 * ext)
    m.d.comb += wide.eq(Cat(Const(0, ext), Const(0, 3), man_y) >> dist)
    y_al = sig("y_al", ext)
    m.d.comb += y_al.eq(wide[ext:] | (wide[:ext] != 0))
    x_al = Cat(Const(0, 3), man_x)

    total = sig("sum", ext + 1)
    sub = x[width - 1] ^ y[width - 1]
    m.d.comb += total.eq(Mux(sub, x_al - y_al, x_al + y_al))

    # Normalise: a carry out shifts right once (keeping the sticky); otherwise shift left over the leading
    # zeros, but never below the smallest exponent (the result is then subnormal).
    lz = sig("lz", range(ext + 1))
    m.d.comb += lz.eq(ext)
    for i in range(ext):
        with m.If(total[i]):
            m.d.comb += lz.eq(ext - 1 - i)
    lshift = sig("lshift", range(ext + 1))
    m.d.comb += lshift.eq(Mux(lz < exp_x, lz, exp_x - 1))
    norm = sig("norm", ext)
    exp_n = sig("exp_n", ebits + 1)
    with m.If(total[ext]):
        m.d.comb += [norm.eq(Cat(total[1] | total[0], total[2:ext + 1])), exp_n.eq(exp_x + 1)]
    with m.Else():
        m.d.comb += [norm.eq(total[:ext] << lshift), exp_n.eq(exp_x - lshift)]

    # Round to nearest even on guard (bit 2), round | sticky (bits 1..0) and the kept lsb (bit 3).
    up = norm[2] & (norm[1] | norm[0] | norm[3])
    mant = sig("mant", mbits + 2)
    m.d.comb += mant.eq(norm[3:] + up)
    # (exp_n - 1) << mbits + mant is the encoding with the hidden bit's carries included (exp_n is 1 when the
    # hidden bit is clear, i.e. for subnormals).
    enc = sig("enc", ebits + mbits + 2)
    m.d.comb += enc.eq(((exp_n - 1) << mbits) + mant)

    out = Signal(width, name=name)
    inf_bits = Const(emax << mbits, width - 1)
    with m.If(a_nan | b_nan | (a_inf & b_inf & (sa != sb))):
        m.d.comb += out.eq((emax << mbits) | (1 << (mbits - 1)))
    with m.Elif(a_inf):
        m.d.comb += out.eq(a)
    with m.Elif(b_inf):
        m.d.comb += out.eq(b)
    with m.Elif(total == 0):
        m.d.comb += out.eq(Cat(Const(0, width - 1), sa & sb))
    with m.Elif(enc >= (emax << mbits)):
        m.d.comb += out.eq(Cat(inf_bits, x[width - 1]))
    with m.Else():
        m.d.comb += out.eq(Cat(enc[:width - 1], x[width - 1]))
    return out


def fp_mul(m: Module, a: Value, b: Value, ebits: int, mbits: int, name: str) -> Signal:
    """Combinational IEEE multiplication of encodings ``a`` and ``b`` (rules in the module docstring).

    The exact product of the two significands (hidden bits included, subnormals with exponent 1) is normalised
    by its leading zeros, which gives the biased exponent ``e`` of its leading one; when ``e < 1`` the result is
    subnormal and the product is shifted right by ``1 - e`` more, the bits shifted out kept as a sticky bit.
    The top ``mbits + 1`` bits are then rounded to nearest even once, as `fp_add` does.
    """
    width = 1 + ebits + mbits
    emax = (1 << ebits) - 1
    bias = (1 << (ebits - 1)) - 1
    pw = 2 * (mbits + 1)  # product width

    def sig(prefix: str, shape) -> Signal:
        return Signal(shape, name=f"{name}_{prefix}")

    sign = a[width - 1] ^ b[width - 1]
    ea, eb = a[mbits:width - 1], b[mbits:width - 1]
    fa, fb = a[:mbits], b[:mbits]
    a_nan, b_nan = (ea == emax) & (fa != 0), (eb == emax) & (fb != 0)
    a_inf, b_inf = (ea == emax) & (fa == 0), (eb == emax) & (fb == 0)
    a_zero, b_zero = (ea == 0) & (fa == 0), (eb == 0) & (fb == 0)

    prod = sig("prod", pw)
    m.d.comb += prod.eq(Cat(fa, ea != 0) * Cat(fb, eb != 0))
    lz = sig("lz", range(pw + 1))
    m.d.comb += lz.eq(pw)
    for i in range(pw):
        with m.If(prod[i]):
            m.d.comb += lz.eq(pw - 1 - i)
    norm = sig("norm", pw)
    m.d.comb += norm.eq(prod << lz)
    # Biased exponent of the leading one: (Ea + Eb - bias) for the product of two 1.x significands (whose
    # leading one is at bit pw - 2), minus the leading zeros beyond the first.
    exp = sig("exp", signed(ebits + 4))
    m.d.comb += exp.eq(Mux(ea == 0, 1, ea) + Mux(eb == 0, 1, eb) - bias + 1 - lz)
    dist = sig("dist", range(pw + 2))  # right shift into the subnormal range
    with m.If(exp >= 1):
        m.d.comb += dist.eq(0)
    with m.Elif(exp < -pw):
        m.d.comb += dist.eq(pw + 1)
    with m.Else():
        m.d.comb += dist.eq(1 - exp)
    wide = sig("wide", 2 * pw)
    m.d.comb += wide.eq(Cat(Const(0, pw), norm) >> dist)
    kept = wide[pw:]
    significand = kept[mbits + 1:]
    guard = kept[mbits]
    sticky = (kept[:mbits] != 0) | (wide[:pw] != 0)
    up = guard & (sticky | significand[0])
    mant = sig("mant", mbits + 2)
    m.d.comb += mant.eq(significand + up)
    # As in fp_add: (exponent - 1) << mbits + mant is the encoding with the rounding carry included; a subnormal
    # result has exponent 1 and no hidden bit.
    enc = sig("enc", signed(ebits + mbits + 5))
    m.d.comb += enc.eq(((Mux(exp >= 1, exp, 1) - 1) << mbits) + mant)

    out = Signal(width, name=name)
    with m.If(a_nan | b_nan | (a_inf & b_zero) | (a_zero & b_inf)):
        m.d.comb += out.eq((emax << mbits) | (1 << (mbits - 1)))
    with m.Elif(a_inf | b_inf | (enc >= (emax << mbits))):
        m.d.comb += out.eq(Cat(Const(emax << mbits, width - 1), sign))
    with m.Elif(a_zero | b_zero):
        m.d.comb += out.eq(Cat(Const(0, width - 1), sign))
    with m.Else():
        m.d.comb += out.eq(Cat(enc[:width - 1], sign))
    return out
