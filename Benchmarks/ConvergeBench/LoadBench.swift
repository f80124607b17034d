import CYAML
import ConvergeCore
import ConvergeManifests
import Foundation

/// Manifest load (`ManifestLoader.load(directory:)` by a new loader: read, parse, validate, cross-check) against its
/// ceiling, the raw libyaml event rate over the same files (read each file, run `yaml_parser_parse` to the stream's
/// end); and the same loader's second load with nothing changed.
enum LoadBench {
    struct Result {
        var size: Int
        var megabytes: Double
        var ours: Sample
        var raw: Sample
        /// Milliseconds of a second load by the same loader with nothing changed.
        var unchanged: Sample
    }

    static func measure(_ repository: RepositoryGenerator.Repository, runs: Int) throws -> Result {
        let megabytes = Double(repository.bytes) / 1_000_000
        var ours: [Double] = []
        var raw: [Double] = []
        var unchanged: [Double] = []
        for run in 1...runs {
            // A new loader each run: a cold, full load (a loader keeps what it read for the next reload).
            let loader = ManifestLoader()
            let rawStart = ContinuousClock.now
            let events = try rawEvents(in: repository.directory)
            let rawSeconds = seconds(since: rawStart)
            raw.append(megabytes / rawSeconds)
            let start = ContinuousClock.now
            let state: DesiredState
            do {
                state = try loader.load(directory: repository.directory)
            } catch {
                throw BenchError(
                    "the generated repository does not load: "
                        + error.diagnostics.prefix(3).map(\.description).joined(separator: "; "))
            }
            let loadSeconds = seconds(since: start)
            ours.append(megabytes / loadSeconds)
            let reloadStart = ContinuousClock.now
            _ = try? loader.load(directory: repository.directory)
            unchanged.append(seconds(since: reloadStart) * 1000)
            guard state.instances.count == repository.instances else {
                throw BenchError("loaded \(state.instances.count) instances, expected \(repository.instances)")
            }
            progress(
                "load \(repository.instances) run \(run): \(String(format: "%.3f", loadSeconds)) s "
                    + "(libyaml: \(String(format: "%.3f", rawSeconds)) s, \(events) events)")
        }
        return Result(
            size: repository.instances, megabytes: megabytes, ours: Sample(ours, unit: "MB/s"),
            raw: Sample(raw, unit: "MB/s"), unchanged: Sample(unchanged, unit: "ms"))
    }

    /// Every libyaml event of every `*.yaml` file below `directory`; returns how many there were.
    static func rawEvents(in directory: URL) throws -> Int {
        var count = 0
        let enumerator = FileManager.default.enumerator(
            at: directory, includingPropertiesForKeys: nil, options: [.skipsHiddenFiles])
        while let url = enumerator?.nextObject() as? URL {
            guard url.pathExtension == "yaml" else { continue }
            let bytes = try [UInt8](Data(contentsOf: url))
            count += try events(in: bytes, file: url.lastPathComponent)
        }
        return count
    }

    static func events(in bytes: [UInt8], file: String) throws -> Int {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { throw BenchError("cannot initialise libyaml") }
        defer { yaml_parser_delete(&parser) }
        return try bytes.withUnsafeBufferPointer { buffer in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var event = yaml_event_t()
            var count = 0
            while true {
                guard yaml_parser_parse(&parser, &event) == 1 else { throw BenchError("libyaml refused \(file)") }
                let type = event.type
                yaml_event_delete(&event)
                count += 1
                if type == YAML_STREAM_END_EVENT { return count }
            }
        }
    }
}
