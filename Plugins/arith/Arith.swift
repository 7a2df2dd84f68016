import Foundation
import StrategyKit

/// A deterministic process check for GSM8K-style solutions: the share of the equations
/// written in the solution whose arithmetic holds. It reads text only, so it costs no
/// model tokens.
struct Arith: Scorer {
    static let name = "arith"
    static let version = "1.0.0"
    static let description = "Share of the solution's equations (a + b = c, <<a*b=c>>) whose arithmetic holds; no model tokens"
    static let params: [Param] = [
        .number("neutral", 0.5, 0...1, "the score of a solution that writes no equation"),
        .number("relative_tolerance", 1e-6, 0...0.1, "how far apart the two sides may be, relative to the larger; "
            + "a result written with decimals may also be rounded to them"),
        .choice("scope", "solution", ["solution", "last-step"],
                "check the whole solution, or only its last step (steps are separated by blank lines)"),
    ]

    init() {}

    func score(_ request: Request, problem: String, solution: String, params: Params) throws -> Double {
        let text = params.string("scope") == "last-step" ? Arith.lastStep(of: solution) : solution
        let equations = Equation.all(in: text)
        guard !equations.isEmpty else { return params.double("neutral") }
        let tolerance = params.double("relative_tolerance")
        return Double(equations.filter { $0.holds(relativeTolerance: tolerance) }.count) / Double(equations.count)
    }

    static func lastStep(of solution: String) -> String {
        solution.components(separatedBy: "\n\n").last { !$0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty } ?? ""
    }
}

@_cdecl("strategyd_plugin_entry")
public func strategydPluginEntry() -> UnsafePointer<sd_plugin> { export(Arith.self) }
