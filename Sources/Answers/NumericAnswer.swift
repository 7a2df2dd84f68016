/// An exact numeric answer: a reduced fraction with a positive denominator.
///
/// Keeping the value reduced makes the synthesized `==` and `hash(into:)` numeric, so
/// "72", "72.0", "$72" and "144/2" are one answer for voting and grading.
public struct NumericAnswer: Sendable, Hashable, CustomStringConvertible {
    public let numerator: Int64
    public let denominator: Int64

    /// nil when the denominator is zero or a part is `Int64.min` (which has no negation).
    public init?(numerator: Int64, denominator: Int64 = 1) {
        guard denominator != 0, numerator != .min, denominator != .min else { return nil }
        let divisor = Self.gcd(abs(numerator), abs(denominator))
        let sign: Int64 = denominator < 0 ? -1 : 1
        self.numerator = sign * numerator / divisor
        self.denominator = sign * denominator / divisor
    }

    /// "72", "-5", "0.25" when the decimal expansion terminates, otherwise "1/3".
    public var description: String {
        if denominator == 1 { return String(numerator) }
        return decimalString ?? "\(numerator)/\(denominator)"
    }

    private var decimalString: String? {
        // The expansion terminates only when the denominator is 2^a * 5^b.
        var rest = denominator, twos = 0, fives = 0
        while rest % 2 == 0 { rest /= 2; twos += 1 }
        while rest % 5 == 0 { rest /= 5; fives += 1 }
        let places = max(twos, fives)
        guard rest == 1, let power = Self.powerOfTen(places) else { return nil }
        let (scaled, overflow) = abs(numerator).multipliedReportingOverflow(by: power / denominator)
        guard !overflow else { return nil }
        var digits = String(scaled)
        if digits.count <= places { digits = String(repeating: "0", count: places + 1 - digits.count) + digits }
        digits.insert(".", at: digits.index(digits.endIndex, offsetBy: -places))
        return (numerator < 0 ? "-" : "") + digits
    }

    /// A decimal literal without sign, e.g. "1,450,000", "0.25", ".5"; nil beyond Int64.
    init?(decimal literal: Substring) {
        let parts = literal.filter { $0 != "," }.split(separator: ".", omittingEmptySubsequences: false)
        let fraction = parts.count > 1 ? parts[1] : ""
        guard let power = Self.powerOfTen(fraction.count), let digits = Int64(parts[0] + fraction) else {
            return nil
        }
        self.init(numerator: digits, denominator: power)
    }

    func adding(_ other: NumericAnswer) -> NumericAnswer? {
        let (left, o1) = numerator.multipliedReportingOverflow(by: other.denominator)
        let (right, o2) = other.numerator.multipliedReportingOverflow(by: denominator)
        let (sum, o3) = left.addingReportingOverflow(right)
        let (common, o4) = denominator.multipliedReportingOverflow(by: other.denominator)
        guard !(o1 || o2 || o3 || o4) else { return nil }
        return NumericAnswer(numerator: sum, denominator: common)
    }

    func divided(by other: NumericAnswer) -> NumericAnswer? {
        let (top, o1) = numerator.multipliedReportingOverflow(by: other.denominator)
        let (bottom, o2) = denominator.multipliedReportingOverflow(by: other.numerator)
        guard !(o1 || o2) else { return nil }
        return NumericAnswer(numerator: top, denominator: bottom)
    }

    var negated: NumericAnswer { NumericAnswer(numerator: -numerator, denominator: denominator)! }

    private static func gcd(_ a: Int64, _ b: Int64) -> Int64 {
        b == 0 ? max(a, 1) : gcd(b, a % b)
    }

    /// 10^n, or nil when it does not fit in Int64 (n > 18).
    private static func powerOfTen(_ n: Int) -> Int64? {
        n <= 18 ? (0..<n).reduce(1) { result, _ in result * 10 } : nil
    }
}
