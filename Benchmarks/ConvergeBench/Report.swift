import Foundation

/// The values of one measurement over several runs, in one unit.
struct Sample: Sendable {
    var values: [Double]
    var unit: String
    /// Digits after the decimal point when printed.
    var digits: Int

    init(_ values: [Double], unit: String, digits: Int = 1) {
        self.values = values
        self.unit = unit
        self.digits = digits
    }

    var median: Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    var minimum: Double { values.min() ?? .nan }
    var maximum: Double { values.max() ?? .nan }

    /// `12.3 MB/s (11.8–13.0)`: the median, then the spread when there are several runs.
    var text: String {
        guard !values.isEmpty else { return "–" }
        let median = format(self.median)
        guard values.count > 1 else { return "\(median) \(unit)" }
        return "\(median) \(unit) (\(format(minimum))–\(format(maximum)))"
    }

    func format(_ value: Double) -> String {
        formatNumber(value, digits: digits)
    }
}

/// A number with thousands separators and a fixed number of decimals.
func formatNumber(_ value: Double, digits: Int) -> String {
    guard value.isFinite else { return "–" }
    let text = String(format: "%.\(digits)f", value)
    let parts = text.split(separator: ".", maxSplits: 1)
    var integer = String(parts[0])
    let negative = integer.hasPrefix("-")
    if negative { integer.removeFirst() }
    var grouped = ""
    for (index, character) in integer.reversed().enumerated() {
        if index > 0 && index % 3 == 0 { grouped.append(",") }
        grouped.append(character)
    }
    return (negative ? "-" : "") + String(grouped.reversed()) + (parts.count > 1 ? ".\(parts[1])" : "")
}

/// The p-th percentile (0–100) of `values`, nearest rank.
func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(max(rank, 0), sorted.count - 1)]
}

/// One row of the table: our figure beside its ceiling, the target and whether it is met.
struct Row: Sendable {
    var name: String
    var ours: String
    var ceiling: String
    var ratio: String
    var target: String
    var verdict: String
    /// What bounds the figure, or how it was measured.
    var note: String

    init(
        _ name: String, ours: String, ceiling: String = "–", ratio: String = "–", target: String, met: Bool?,
        note: String = ""
    ) {
        self.name = name
        self.ours = ours
        self.ceiling = ceiling
        self.ratio = ratio
        self.target = target
        self.verdict =
            switch met {
            case .some(true): "met"
            case .some(false): "not met"
            case .none: "–"
            }
        self.note = note
    }

    /// A row whose measurement failed.
    static func failed(_ name: String, target: String, error: any Error) -> Row {
        Row(name, ours: "error", target: target, met: nil, note: "\(error)")
    }
}

/// A percentage with no decimals below 10 % shown with one.
func percent(_ fraction: Double) -> String {
    guard fraction.isFinite else { return "–" }
    return fraction < 0.1 ? String(format: "%.1f %%", fraction * 100) : String(format: "%.0f %%", fraction * 100)
}

/// The rows as a Markdown table, which reads as plain text on a terminal too.
func markdownTable(_ rows: [Row]) -> String {
    let header = ["measure", "ours: median (min–max)", "ceiling, same run", "ratio", "target", "verdict", "notes"]
    var lines = [
        "| " + header.joined(separator: " | ") + " |",
        "|" + header.map { _ in " --- " }.joined(separator: "|") + "|",
    ]
    for row in rows {
        let cells = [row.name, row.ours, row.ceiling, row.ratio, row.target, row.verdict, row.note]
        lines.append("| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |")
    }
    return lines.joined(separator: "\n")
}

/// The machine the figures were taken on: CPU model, cores, memory, kernel, Swift version, date.
struct Machine {
    var cpu: String
    var cores: Int
    var memory: String
    var kernel: String
    var swift: String
    var date: String

    static func current() -> Machine {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model =
            cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) }
            ?? "unknown CPU"
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        let memory =
            meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal") }
            .flatMap { line in line.split(separator: " ").dropFirst().first.flatMap { Double($0) } }
            .map { String(format: "%.1f GiB", $0 / 1_048_576) } ?? "unknown"
        let swift =
            (try? runCommand(["swift", "--version"]))?.split(separator: "\n").first.map(String.init) ?? "unknown"
        let kernel = (try? runCommand(["uname", "-sr"]))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
        let formatter = ISO8601DateFormatter()
        return Machine(
            cpu: model, cores: ProcessInfo.processInfo.activeProcessorCount, memory: memory, kernel: kernel,
            swift: swift, date: formatter.string(from: Date()))
    }

    /// A Markdown list of every fact.
    func lines(convergeBinary: URL) -> [String] {
        [
            "- CPU: \(cpu), \(cores) cores online",
            "- memory: \(memory)",
            "- kernel: \(kernel)",
            "- Swift: \(swift)",
            "- binary: \(convergeBinary.path)",
            "- date: \(date)",
        ]
    }

    /// One line for the README.
    var summary: String { "\(cpu), \(cores) cores, \(memory); \(swift); \(date)" }
}

/// Runs a command and returns its standard output.
func runCommand(_ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

/// Seconds since `start`.
func seconds(since start: ContinuousClock.Instant) -> Double {
    milliseconds(ContinuousClock.now - start) / 1000
}

/// `duration` in milliseconds.
func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}
