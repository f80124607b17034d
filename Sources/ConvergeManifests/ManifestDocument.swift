import ConvergeCore
import Foundation

/// A manifest document read to be applied through the API (`converge apply -f`): the resource it declares and its
/// content, checked for its own shape where it was written, so that a mistake names the user's file and line.
public struct ManifestDocument: Sendable {
    public var key: ResourceKey
    /// The document as a value: what the API receives as JSON.
    public var value: Value
    public var location: SourceLocation

    /// Every document of the YAML file at `url`, or of every `*.yaml` and `*.yml` below it when it is a directory;
    /// all problems together, nothing when there is any.
    public static func read(_ url: URL, limits: YAMLLimits = YAMLLimits()) throws(ManifestErrors) -> [ManifestDocument]
    {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw ManifestErrors([
                ManifestDiagnostic(SourceLocation(file: url.path, line: 1, column: 1), "", "no such file or directory")
            ])
        }
        var sources: [(path: String, bytes: [UInt8])] = []
        var diagnostics: [ManifestDiagnostic] = []
        if isDirectory.boolValue {
            do {
                let scan = try ManifestDirectory.scan(url)
                diagnostics += scan.diagnostics
                for file in scan.files {
                    switch ManifestDirectory.contents(of: file, limit: limits.maxFileBytes) {
                    case .success(let read): sources.append((file.path, read.bytes))
                    case .failure(let diagnostic): diagnostics.append(diagnostic)
                    }
                }
            } catch {
                diagnostics.append(error)
            }
        } else if let data = FileManager.default.contents(atPath: url.path) {
            sources.append((url.path, Array(data)))
        } else {
            diagnostics.append(
                ManifestDiagnostic(SourceLocation(file: url.path, line: 1, column: 1), "", "cannot read the file"))
        }
        var documents: [ManifestDocument] = []
        for source in sources {
            do {
                for node in try YAMLParser(limits: limits).parse(utf8: source.bytes, file: source.path) {
                    // metadata.resourceVersion is for the API's optimistic concurrency, not part of the manifest.
                    let declaration = Declaration(node.removing(field: "resourceVersion", of: "metadata"))
                    diagnostics += declaration.diagnostics
                    if let key = declaration.key, declaration.diagnostics.isEmpty {
                        documents.append(ManifestDocument(key: key, value: node.value, location: node.location))
                    }
                }
            } catch {
                diagnostics.append(error)
            }
        }
        guard diagnostics.isEmpty else { throw ManifestErrors(diagnostics) }
        return documents
    }
}
