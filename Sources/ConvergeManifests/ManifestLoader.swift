import ConvergeCore
import Foundation
import Synchronization

/// Reads a manifests directory (or files) into the desired state, or reports every problem of the load.
///
/// A load is all or nothing: any problem in any file means no desired state at all, so a caller never replaces
/// what it has with half of a repository.
///
/// The loader remembers what it read, so that a reload costs in proportion to what changed (CONVENTIONS 20): every
/// file's parsed and decoded documents are kept with the file's identity (device, inode, size, modification time
/// in nanoseconds) and the hash of its content. A file whose identity is unchanged is not read again; a file whose
/// identity changed is read and hashed, and parsed only when its content changed. A file modified less than two
/// seconds before it was read is read and hashed again on the next load even if its identity looks the same,
/// since two edits within one tick of the file system's clock, to the same size, leave the same identity.
/// Cross-resource validation runs over the whole set whenever any file changed; when nothing did, the previous
/// outcome is returned as it was.
///
/// It is `Sendable` and meant to be used from one task at a time (the daemon's manifest source); concurrent loads
/// are correct but do not share what they read.
public final class ManifestLoader: Sendable {
    /// The desired state of a successful load, and whether it changed.
    public struct Result: Sendable {
        /// Everything the manifests declare.
        public var state: DesiredState
        /// Whether `state` differs from the one this loader's previous successful load returned (true for the first
        /// load). When false, whatever the caller did with the previous state need not be done again.
        public var changed: Bool
    }

    /// How much work a load took.
    public struct Statistics: Sendable, Equatable {
        /// Manifest files found.
        public var files = 0
        /// Files read from disk (new, changed identity, or modified too recently to trust their identity).
        public var read = 0
        /// Files parsed and decoded (new or changed content).
        public var parsed = 0

        public init(files: Int = 0, read: Int = 0, parsed: Int = 0) {
            self.files = files
            self.read = read
            self.parsed = parsed
        }
    }

    public let limits: YAMLLimits
    private let cache = Mutex(Cache())

    public init(limits: YAMLLimits = YAMLLimits()) {
        self.limits = limits
    }

    /// The work done by the latest `load(directory:)` or `reload(directory:)`.
    public var lastStatistics: Statistics { cache.withLock { $0.statistics } }

    /// Loads every `*.yaml` and `*.yml` below `directory` (hidden entries skipped, symbolic links leaving it
    /// refused); paths in errors are relative to it.
    public func load(directory: URL) throws(ManifestErrors) -> DesiredState {
        try reload(directory: directory).state
    }

    /// Loads `directory` like `load(directory:)`, together with the resources applied through the API, reusing what
    /// earlier loads read, and says whether the desired state changed since the previous successful load.
    ///
    /// Called on every poll of the daemon: when no file and no API document changed it costs a `stat` per file.
    /// API documents are checked exactly like files (their errors point at `api:<Kind>/<id>`), and one that
    /// declares the same resource as a file is a duplicate. Without `remembering` (a dry run of an API write) the
    /// load is not the previous one for the next: what it read is forgotten.
    public func reload(directory: URL, apiDocuments: [APIDocument] = [], remembering: Bool = true)
        throws(ManifestErrors) -> Result
    {
        let taken = self.cache.withLock { cache in
            let taken = cache
            cache = Cache()
            return taken
        }
        var cache = taken
        defer { self.cache.withLock { [cache] in $0 = remembering ? cache : taken } }
        return try reload(directory: directory, apiDocuments: apiDocuments, cache: &cache)
    }

    /// Loads manifests from `(path, text)` pairs; the order of the files never matters. Nothing is remembered.
    public func load(files: [(path: String, text: String)]) throws(ManifestErrors) -> DesiredState {
        var load = Load()
        for file in files.sorted(by: { $0.path < $1.path }) {
            add(parse(Array(file.text.utf8), path: file.path), to: &load)
        }
        load.checkReferences()
        guard load.diagnostics.isEmpty else { throw ManifestErrors(load.diagnostics) }
        return load.state
    }

    private func reload(directory: URL, apiDocuments: [APIDocument], cache: inout Cache) throws(ManifestErrors)
        -> Result
    {
        let started = Int(Date().timeIntervalSince1970)
        let scan: ManifestDirectory
        do {
            scan = try ManifestDirectory.scan(directory)
        } catch {
            throw ManifestErrors([error])
        }
        if cache.root != scan.root { cache = Cache(root: scan.root) }
        var statistics = Statistics(files: scan.files.count)
        var diagnostics = scan.diagnostics
        var files: [String: CachedFile] = [:]
        var changed = cache.outcome == nil || scan.diagnostics != cache.scanDiagnostics
        for file in scan.files {
            let cached = cache.files[file.path]
            if let cached, cached.settled, cached.identity == file.identity {
                files[file.path] = cached
                continue
            }
            statistics.read += 1
            let bytes: [UInt8]
            let identity: FileIdentity
            switch ManifestDirectory.contents(of: file, limit: limits.maxFileBytes) {
            case .success(let read): (bytes, identity) = read
            case .failure(let diagnostic):
                diagnostics.append(diagnostic)
                changed = true
                continue
            }
            guard let text = String(validating: bytes, as: UTF8.self) else {
                diagnostics.append(
                    ManifestDiagnostic(
                        SourceLocation(file: file.path, line: 1, column: 1), "", "file is not valid utf-8"))
                changed = true
                continue
            }
            let hash = ContentDigest(text)
            let settled = identity.modifiedSeconds < started - Cache.settlingSeconds
            if let cached, cached.hash == hash {
                files[file.path] = CachedFile(
                    identity: identity, settled: settled, hash: hash, documents: cached.documents)
                continue
            }
            statistics.parsed += 1
            changed = true
            files[file.path] = CachedFile(
                identity: identity, settled: settled, hash: hash, documents: parse(bytes, path: file.path))
        }
        changed = changed || files.count != cache.files.count
        var applied: [ResourceKey: CachedAPIDocument] = [:]
        for document in apiDocuments {
            if let cached = cache.apiDocuments[document.key], cached.json == document.json {
                applied[document.key] = cached
                continue
            }
            changed = true
            applied[document.key] = CachedAPIDocument(json: document.json, parsed: parse(document))
        }
        changed = changed || applied.count != cache.apiDocuments.count
        cache.apiDocuments = applied
        cache.files = files
        cache.scanDiagnostics = scan.diagnostics
        cache.statistics = statistics
        if !changed, let outcome = cache.outcome {
            switch outcome {
            case .loaded(let state): return Result(state: state, changed: false)
            case .failed(let errors): throw errors
            }
        }
        var load = Load()
        load.diagnostics = diagnostics
        for path in files.keys.sorted() { add(files[path]!.documents, to: &load) }
        for key in applied.keys.sorted() { add(applied[key]!.parsed, to: &load) }
        load.checkReferences()
        guard load.diagnostics.isEmpty else {
            let errors = ManifestErrors(load.diagnostics)
            cache.outcome = .failed(errors)
            throw errors
        }
        let result = Result(state: load.state, changed: cache.lastState != load.state)
        cache.outcome = .loaded(load.state)
        cache.lastState = load.state
        return result
    }

    /// The declarations of the documents of one file (valid UTF-8), or the problem that stopped its parse.
    private func parse(_ bytes: [UInt8], path: String) -> ParsedFile {
        do {
            return .declared(try YAMLParser(limits: limits).parse(utf8: bytes, file: path).map(Declaration.init))
        } catch {
            return .failed(error)
        }
    }

    /// The declaration of an API document, which must be one document declaring the resource it was applied as.
    private func parse(_ document: APIDocument) -> ParsedFile {
        let file = SourceLocation.apiFile(of: document.key)
        let parsed = parse(Array(document.json.utf8), path: file)
        guard case .declared(let declarations) = parsed else { return parsed }
        let start = SourceLocation(file: file, line: 1, column: 1)
        guard declarations.count == 1, let declaration = declarations.first else {
            return .failed(ManifestDiagnostic(start, "", "expected one document, got \(declarations.count)"))
        }
        if let key = declaration.key, key != document.key {
            return .failed(
                ManifestDiagnostic(start, "metadata", "declares \(key), but was applied as \(document.key)"))
        }
        return parsed
    }

    private func add(_ file: ParsedFile, to load: inout Load) {
        switch file {
        case .declared(let declarations):
            for declaration in declarations { load.add(declaration) }
        case .failed(let diagnostic):
            load.diagnostics.append(diagnostic)
        }
    }
}

/// What the loader remembers between loads of one directory.
private struct Cache {
    /// How long after its last modification a file's identity is trusted to tell whether it changed: longer than
    /// the coarsest timestamp granularity of the file systems in use.
    static let settlingSeconds = 2

    enum Outcome {
        case loaded(DesiredState)
        case failed(ManifestErrors)
    }

    /// The real path of the directory loaded.
    var root: String?
    /// Every file read without error, by path relative to the root.
    var files: [String: CachedFile] = [:]
    /// The problems the scan of the directory found (links leaving it, FIFOs).
    var scanDiagnostics: [ManifestDiagnostic] = []
    /// Every API document of the latest load, with its declaration.
    var apiDocuments: [ResourceKey: CachedAPIDocument] = [:]
    /// The outcome of the latest load, returned again while nothing changes.
    var outcome: Outcome?
    /// The state of the latest successful load, to tell whether a new one changed.
    var lastState: DesiredState?
    var statistics = ManifestLoader.Statistics()
}

/// One file as the loader last read it.
private struct CachedFile {
    var identity: FileIdentity
    /// Whether the file had not been modified for `Cache.settlingSeconds` when it was read, so that an unchanged
    /// identity means unchanged content.
    var settled: Bool
    var hash: ContentDigest
    var documents: ParsedFile
}

/// A resource applied through the API: its key and its manifest document as JSON (JSON is YAML, so it is read by
/// the same parser and checks as a file).
public struct APIDocument: Equatable, Sendable {
    public var key: ResourceKey
    public var json: String

    public init(key: ResourceKey, json: String) {
        self.key = key
        self.json = json
    }
}

/// One API document as the loader last read it.
private struct CachedAPIDocument {
    var json: String
    var parsed: ParsedFile
}

/// The declarations of a file's documents, or the problem that stopped its parse.
private enum ParsedFile {
    case declared([Declaration])
    case failed(ManifestDiagnostic)
}
