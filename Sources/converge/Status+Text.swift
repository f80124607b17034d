import ConvergeAPI
import ConvergeClient
import ConvergeCore
import Foundation

extension Status {
    /// Prints a readiness answer: as JSON or YAML as is, or for people as lines that say whether the daemon is ready
    /// and serving, the load of the manifests in force (version, commit, when it was last good) and, while loads are
    /// refused, since when and each error on its own line.
    func print(_ readiness: Components.Schemas.Readiness) throws {
        guard options.output == .table else { return try options.print(readiness, table: nil) }
        FileHandle.standardOutput.write(Data(Self.text(try ConvergeClient.value(readiness)).utf8))
    }

    /// The lines of `print` for people.
    static func text(_ readiness: Value) -> String {
        let manifests = readiness["checks"]?["manifests"]
        var loaded = "no good load yet"
        if manifests?["loaded"] == true {
            loaded = [
                "version \(manifests?["version"]?.canonicalJSON ?? "-")",
                manifests?["commit"]?.stringValue.map { "commit \($0)" },
                manifests?["loadedAt"]?.stringValue.map { "last good at \($0)" },
            ].compactMap { $0 }.joined(separator: ", ")
        }
        var lines = [
            "ready:     \(readiness["ready"]?.canonicalJSON ?? "-")",
            "serving:   \(readiness["serving"]?.canonicalJSON ?? "-")",
            "store:     \(readiness["checks"]?["store"]?.stringValue ?? "-")",
            "manifests: \(loaded)",
        ]
        if let refused = manifests?["refused"] {
            let errors = refused["errors"]?.arrayValue?.compactMap(\.stringValue) ?? []
            lines.append(
                "refused:   the latest load, since \(refused["since"]?.stringValue ?? "-") "
                    + "(\(errors.count) error\(errors.count == 1 ? "" : "s")); the last good load stays in force")
            lines += errors.map { "  " + $0 }
        }
        let daemons = readiness["checks"]?["daemons"]?.arrayValue ?? []
        lines.append("daemons:   \(daemons.count) alive")
        lines += daemons.map { daemon in
            "  \(daemon["id"]?.stringValue ?? "-") on \(daemon["host"]?.stringValue ?? "-"), version "
                + "\(daemon["version"]?.stringValue ?? "-"), since \(daemon["since"]?.stringValue ?? "-"), "
                + "\(daemon["leasesHeld"]?.canonicalJSON ?? "0") leases held"
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
