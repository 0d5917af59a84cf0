//! Memory quantities as the API server writes them (`16Gi`, `512Mi`, `1500M`, `129e6`), read as
//! whole bytes.
//!
//! k8s-openapi keeps a Quantity as its string, and no small, maintained crate parses one without
//! pulling in another Kubernetes model, so this is written by hand. The arithmetic is exact
//! (integers, not floats): headroom is compared to the byte, and a fractional byte rounds up as
//! the API server does.

use std::fmt;

/// A memory amount in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Bytes(pub u128);

impl Bytes {
    /// Parses a Kubernetes quantity; `None` when it is not one.
    pub fn parse(quantity: &str) -> Option<Bytes> {
        let s = quantity.trim().trim_start_matches('+');
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(split);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return None;
        }
        let digits: u128 = format!("{whole}{fraction}").parse().ok()?;
        let (binary, decimal_exponent): (u128, i32) = match suffix {
            "" => (1, 0),
            "Ki" => (1 << 10, 0),
            "Mi" => (1 << 20, 0),
            "Gi" => (1 << 30, 0),
            "Ti" => (1 << 40, 0),
            "Pi" => (1 << 50, 0),
            "Ei" => (1 << 60, 0),
            "n" => (1, -9),
            "u" => (1, -6),
            "m" => (1, -3),
            "k" => (1, 3),
            "M" => (1, 6),
            "G" => (1, 9),
            "T" => (1, 12),
            "P" => (1, 15),
            "E" => (1, 18),
            exp => (1, exp.strip_prefix(['e', 'E'])?.parse().ok()?),
        };
        // `fraction.len()` digits were moved left of the point: scale them back.
        let exponent = decimal_exponent - i32::try_from(fraction.len()).ok()?;
        let value = digits.checked_mul(binary)?;
        let bytes = if exponent >= 0 {
            value.checked_mul(10u128.checked_pow(exponent.unsigned_abs())?)?
        } else {
            value.div_ceil(10u128.checked_pow(exponent.unsigned_abs())?)
        };
        Some(Bytes(bytes))
    }
}

impl fmt::Display for Bytes {
    /// The largest binary unit, rounded to one decimal, as people write limits: `12Gi`, `1.5Gi`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u32); 4] = [("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)];
        for (unit, shift) in UNITS {
            let size = 1u128 << shift;
            if self.0 >= size {
                let tenths = (self.0 * 10 + size / 2) / size;
                return if tenths.is_multiple_of(10) {
                    write!(f, "{}{unit}", tenths / 10)
                } else {
                    write!(f, "{}.{}{unit}", tenths / 10, tenths % 10)
                };
            }
        }
        write!(f, "{}", self.0)
    }
}

impl std::ops::Add for Bytes {
    type Output = Bytes;
    fn add(self, other: Bytes) -> Bytes {
        Bytes(self.0 + other.0)
    }
}

impl std::iter::Sum for Bytes {
    fn sum<I: Iterator<Item = Bytes>>(iter: I) -> Bytes {
        iter.fold(Bytes(0), |a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_decimal_and_exponent_forms() {
        let gi = 1u128 << 30;
        assert_eq!(Bytes::parse("12Gi"), Some(Bytes(12 * gi)));
        assert_eq!(Bytes::parse("512Mi"), Some(Bytes(512 << 20)));
        assert_eq!(Bytes::parse("1.5Gi"), Some(Bytes(gi * 3 / 2)));
        assert_eq!(Bytes::parse("1500M"), Some(Bytes(1_500_000_000)));
        assert_eq!(Bytes::parse("129e6"), Some(Bytes(129_000_000)));
        assert_eq!(Bytes::parse("131072"), Some(Bytes(131_072)));
        assert_eq!(Bytes::parse("+1k"), Some(Bytes(1000)));
        // Millibytes exist in the grammar; a fractional byte rounds up.
        assert_eq!(Bytes::parse("1500m"), Some(Bytes(2)));
        assert_eq!(Bytes::parse(".5Ki"), Some(Bytes(512)));
    }

    #[test]
    fn rejects_what_is_not_a_quantity() {
        for bad in ["", "Gi", "12GB", "1.2.3", "x", "1e", "-1Gi"] {
            assert_eq!(Bytes::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn prints_like_a_person_writes_a_limit() {
        assert_eq!(Bytes(12 << 30).to_string(), "12Gi");
        assert_eq!(Bytes(3 << 29).to_string(), "1.5Gi");
        assert_eq!(Bytes(512 << 20).to_string(), "512Mi");
        assert_eq!(Bytes(100).to_string(), "100");
        assert_eq!(Bytes((1 << 30) - 1).to_string(), "1024Mi");
        assert_eq!(Bytes((10 << 30) + (1 << 20)).to_string(), "10Gi");
    }
}
