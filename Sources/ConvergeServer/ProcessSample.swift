import Foundation

/// What the standard Prometheus process metrics report of the daemon, read from `/proc` (Linux) when scraped.
struct ProcessSample: Equatable {
    var cpuSeconds: Double
    var residentMemoryBytes: Double
    var virtualMemoryBytes: Double
    var openFDs: Double
    var maxFDs: Double
    var startTimeSeconds: Double

    /// The daemon's own sample; nil where there is no `/proc` to read.
    static func current() -> ProcessSample? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let system = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")
        else { return nil }
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return ProcessSample(
            stat: stat, system: system, ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK))),
            pageSize: Double(sysconf(Int32(_SC_PAGESIZE))),
            // Less the descriptor the listing itself held open.
            openFDs: Double(fds.count - 1), maxFDs: Double(limit.rlim_cur))
    }
}

extension ProcessSample {
    /// A sample from the text of `/proc/self/stat` and `/proc/stat` (for the boot time); nil for a text that does not
    /// parse. The process name, in parentheses, may hold spaces and parentheses itself: the fields follow its last `)`.
    init?(stat: String, system: String, ticksPerSecond: Double, pageSize: Double, openFDs: Double, maxFDs: Double) {
        guard let nameEnd = stat.lastIndex(of: ")") else { return nil }
        // Field 3 of proc(5) (the state) is the first after the name.
        let fields = stat[stat.index(after: nameEnd)...].split(separator: " ")
        func field(_ number: Int) -> Double? { fields.count > number - 3 ? Double(fields[number - 3]) : nil }
        let bootTime = system.split(separator: "\n").first { $0.hasPrefix("btime ") }.flatMap {
            Double($0.dropFirst("btime ".count))
        }
        guard let userTicks = field(14), let systemTicks = field(15), let startTicks = field(22),
            let virtualBytes = field(23), let residentPages = field(24), let bootTime, ticksPerSecond > 0
        else { return nil }
        self.init(
            cpuSeconds: (userTicks + systemTicks) / ticksPerSecond, residentMemoryBytes: residentPages * pageSize,
            virtualMemoryBytes: virtualBytes, openFDs: openFDs, maxFDs: maxFDs,
            startTimeSeconds: bootTime + startTicks / ticksPerSecond)
    }
}
