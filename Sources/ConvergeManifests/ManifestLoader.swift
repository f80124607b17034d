import ConvergeCore
import Foundation

/// Reads a manifests directory (or files) into the desired state, or reports every problem of the load.
///
/// A load is all or nothing: any problem in any file means no desired state at all, so a caller never replaces
/// what it has with half of a repository.
public struct ManifestLoader: Sendable {
    public var limits: YAMLLimits

    public init(limits: YAMLLimits = YAMLLimits()) {
        self.limits = limits
    }

    /// Loads every `*.yaml` and `*.yml` below `directory` (hidden folders skipped); paths in errors are relative
    /// to it.
    public func load(directory: URL) throws(ManifestErrors) -> DesiredState {
        let files: [(path: String, text: String)]
        do {
            files = try Self.readFiles(in: directory, limits: limits)
        } catch let error as ManifestDiagnostic {
            throw ManifestErrors([error])
        } catch {
            throw ManifestErrors([
                ManifestDiagnostic(SourceLocation(file: directory.path, line: 1, column: 1), "", "\(error)")
            ])
        }
        return try load(files: files)
    }

    /// Loads manifests from `(path, text)` pairs; the order of the files never matters.
    public func load(files: [(path: String, text: String)]) throws(ManifestErrors) -> DesiredState {
        var load = Load()
        let parser = YAMLParser(limits: limits)
        for file in files.sorted(by: { $0.path < $1.path }) {
            do {
                for document in try parser.parse(file.text, file: file.path) { load.declare(document) }
            } catch {
                load.diagnostics.append(error)
            }
        }
        load.checkReferences()
        guard load.diagnostics.isEmpty else { throw ManifestErrors(load.diagnostics) }
        return load.state
    }

    static func readFiles(in directory: URL, limits: YAMLLimits) throws -> [(path: String, text: String)] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue
        else {
            throw ManifestDiagnostic(
                SourceLocation(file: directory.path, line: 1, column: 1), "", "no such directory")
        }
        let root = directory.standardizedFileURL.resolvingSymlinksInPath().path
        guard
            let enumerator = FileManager.default.enumerator(
                at: URL(fileURLWithPath: root), includingPropertiesForKeys: [.isDirectoryKey, .fileSizeKey],
                options: [.skipsHiddenFiles])
        else { return [] }
        var files: [(path: String, text: String)] = []
        for case let url as URL in enumerator where ["yaml", "yml"].contains(url.pathExtension) {
            let path = String(url.resolvingSymlinksInPath().path.dropFirst(root.count + 1))
            let values = try url.resourceValues(forKeys: [.isDirectoryKey, .fileSizeKey])
            if values.isDirectory == true { continue }
            if let size = values.fileSize, size > limits.maxFileBytes {
                throw ManifestDiagnostic(
                    SourceLocation(file: path, line: 1, column: 1), "",
                    "file is \(size) bytes, more than the limit of \(limits.maxFileBytes)")
            }
            let data = try Data(contentsOf: url)
            guard let text = String(data: data, encoding: .utf8) else {
                throw ManifestDiagnostic(SourceLocation(file: path, line: 1, column: 1), "", "file is not valid utf-8")
            }
            files.append((path, text))
        }
        return files
    }
}
