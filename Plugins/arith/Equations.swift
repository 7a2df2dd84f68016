import Foundation

/// An equation written in a solution: "3 + 4 = 7", "$1,200 / 4 = $300", or the GSM8K
/// calculator form "<<48/2=24>>" (its brackets end the surrounding text like any other
/// punctuation, so the inside reads as a plain equation).
struct Equation: Equatable {
    var left: Double
    var right: Double
    /// Decimals the written result has: "3.33" may stand for 10/3 rounded to 2 places.
    var decimals: Int

    /// Whether the two sides agree, within `relativeTolerance` of the larger or by
    /// rounding to the decimals the result is written with.
    func holds(relativeTolerance: Double) -> Bool {
        let difference = abs(left - right)
        if difference <= relativeTolerance * max(abs(left), abs(right)) { return true }
        // Integers get no rounding allowance: "10 / 3 = 3" is wrong.
        return decimals > 0 && difference <= 0.5 * pow(10, -Double(decimals)) * (1 + 1e-9)
    }

    /// Every equation in `text`. A run of arithmetic (numbers, operators, parentheses,
    /// "=") ends at a word, a line break or punctuation. In a chain "a = b = c" each
    /// neighbouring pair is one equation; a pair counts only when a side has an operator,
    /// so "x = 5" or "Total = 20" are not equations.
    static func all(in text: String) -> [Equation] {
        Lexeme.runs(in: text).flatMap(equations(inRun:))
    }

    private static func equations(inRun run: [Lexeme]) -> [Equation] {
        let sides = run.split(separator: .equals, omittingEmptySubsequences: false).map(Array.init)
        guard sides.count >= 2 else { return [] }
        var found: [Equation] = []
        for index in 0..<(sides.count - 1) {
            // The outer sides may carry leading or trailing numbers that belong to the prose
            // ("Day 2 3 + 4 = 7"): take the longest part next to the "=" that parses.
            let left = index == 0 ? Expression.longestSuffix(of: sides[index]) : Expression.parse(sides[index])
            let right = index + 1 == sides.count - 1 ? Expression.longestPrefix(of: sides[index + 1])
                : Expression.parse(sides[index + 1])
            guard let left, let right, left.operators + right.operators > 0 else { continue }
            found.append(Equation(left: left.value, right: right.value,
                                  decimals: right.literalDecimals ?? left.literalDecimals ?? 0))
        }
        return found
    }
}

enum Lexeme: Equatable {
    /// `decimals`: digits after the point as written, in units of the value (a percent adds 2).
    case number(Double, decimals: Int)
    case plus, minus, times, divide, open, close, equals

    private static let currency: Set<Character> = ["$", "€", "£"]

    /// The runs of arithmetic in `text`, split wherever something else stands between them.
    static func runs(in text: String) -> [[Lexeme]] {
        let characters = Array(text)
        var runs: [[Lexeme]] = []
        var current: [Lexeme] = []
        func endRun() {
            if !current.isEmpty { runs.append(current) }
            current = []
        }
        var index = 0
        while index < characters.count {
            let character = characters[index]
            if character.isNumber, character.isASCII {
                let (lexeme, end) = number(in: characters, from: index)
                current.append(lexeme)
                index = end
                continue
            }
            if character.isLetter {
                var end = index
                while end < characters.count, characters[end].isLetter { end += 1 }
                // A lone "x" between numbers is multiplication ("3 x 4"); any word ends the run.
                if end - index == 1, character == "x" { current.append(.times) } else { endRun() }
                index = end
                continue
            }
            switch character {
            case " ", "\t": break
            case "+": current.append(.plus)
            case "-", "−": current.append(.minus)
            case "*", "×": current.append(.times)
            case "/", "÷": current.append(.divide)
            case "(": current.append(.open)
            case ")": current.append(.close)
            case "=": current.append(.equals)
            case _ where currency.contains(character): break
            default: endRun()
            }
            index += 1
        }
        endRun()
        return runs
    }

    /// A number at `start`: digits with optional thousands commas ("1,200"), decimals and a percent sign.
    private static func number(in characters: [Character], from start: Int) -> (Lexeme, Int) {
        func isDigit(_ at: Int) -> Bool { at < characters.count && characters[at].isASCII && characters[at].isNumber }
        var end = start
        while isDigit(end) { end += 1 }
        var digits = String(characters[start..<end])
        // Thousands groups: a comma followed by exactly three digits.
        if digits.count <= 3 {
            while end < characters.count, characters[end] == ",", isDigit(end + 1), isDigit(end + 2), isDigit(end + 3),
                  !isDigit(end + 4) {
                digits += String(characters[(end + 1)...(end + 3)])
                end += 4
            }
        }
        var decimals = 0
        if end < characters.count, characters[end] == ".", isDigit(end + 1) {
            var fractionEnd = end + 1
            while isDigit(fractionEnd) { fractionEnd += 1 }
            decimals = fractionEnd - end - 1
            digits += String(characters[end..<fractionEnd])
            end = fractionEnd
        }
        var value = Double(digits) ?? 0
        if end < characters.count, characters[end] == "%" {
            value /= 100
            decimals += 2
            end += 1
        }
        return (.number(value, decimals: decimals), end)
    }
}

/// An arithmetic expression over numbers: + - * / with the usual precedence, parentheses
/// and unary minus.
struct Expression {
    var value: Double
    /// Binary operators it contains.
    var operators: Int
    /// The decimals of a bare number; nil for anything with an operator.
    var literalDecimals: Int?

    /// The expression when all of `lexemes` form one.
    static func parse(_ lexemes: [Lexeme]) -> Expression? {
        var parser = Parser(lexemes: lexemes)
        guard let value = parser.sum(), parser.position == lexemes.count else { return nil }
        var literalDecimals: Int?
        if lexemes.count == 1, case .number(_, let decimals) = lexemes[0] { literalDecimals = decimals }
        return Expression(value: value, operators: parser.operators, literalDecimals: literalDecimals)
    }

    static func longestSuffix(of lexemes: [Lexeme]) -> Expression? {
        lexemes.indices.lazy.compactMap { parse(Array(lexemes[$0...])) }.first
    }

    static func longestPrefix(of lexemes: [Lexeme]) -> Expression? {
        lexemes.indices.reversed().lazy.compactMap { parse(Array(lexemes[...$0])) }.first
    }

    private struct Parser {
        let lexemes: [Lexeme]
        var position = 0
        var operators = 0

        mutating func sum() -> Double? {
            guard var value = product() else { return nil }
            while position < lexemes.count, lexemes[position] == .plus || lexemes[position] == .minus {
                let isPlus = lexemes[position] == .plus
                position += 1
                operators += 1
                guard let operand = product() else { return nil }
                value = isPlus ? value + operand : value - operand
            }
            return value
        }

        mutating func product() -> Double? {
            guard var value = factor() else { return nil }
            while position < lexemes.count, lexemes[position] == .times || lexemes[position] == .divide {
                let isTimes = lexemes[position] == .times
                position += 1
                operators += 1
                guard let operand = factor() else { return nil }
                value = isTimes ? value * operand : value / operand
            }
            return value
        }

        mutating func factor() -> Double? {
            guard position < lexemes.count else { return nil }
            let lexeme = lexemes[position]
            position += 1
            switch lexeme {
            case .number(let value, _): return value
            case .minus: return factor().map { -$0 }
            case .open:
                guard let value = sum(), position < lexemes.count, lexemes[position] == .close else { return nil }
                position += 1
                return value
            default: return nil
            }
        }
    }
}
