import ConvergeCore
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// What a reload can tell about a file without reading it: the file system's identity of the file (device and
/// inode), its size and when it was last modified, to the nanosecond.
struct FileIdentity: Hashable, Sendable {
    var device: UInt64
    var inode: UInt64
    var size: Int
    var modifiedSeconds: Int
    var modifiedNanoseconds: Int

    init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int(info.st_size)
        #if canImport(Darwin)
            modifiedSeconds = Int(info.st_mtimespec.tv_sec)
            modifiedNanoseconds = Int(info.st_mtimespec.tv_nsec)
        #else
            modifiedSeconds = Int(info.st_mtim.tv_sec)
            modifiedNanoseconds = Int(info.st_mtim.tv_nsec)
        #endif
    }
}

/// The manifest files (`*.yaml`, `*.yml`) below a directory, found without ever leaving it.
///
/// Hidden entries are skipped. A symbolic link is resolved: one that stays inside the directory is followed (a file
/// reached twice is listed once, under its real path; a directory reached twice, as in a link cycle, is walked
/// once), one that leaves it is refused. FIFOs, sockets and devices are refused without being opened, since
/// opening a FIFO would block. Every refusal is a diagnostic naming the entry relative to the directory.
struct ManifestDirectory {
    /// One manifest file found by the scan.
    struct File {
        /// The real path relative to the directory, as errors name it.
        var path: String
        /// The real absolute path, to open.
        var absolutePath: String
        var identity: FileIdentity
    }

    /// The real absolute path of the directory.
    var root: String
    /// The files found, sorted by path.
    var files: [File] = []
    var diagnostics: [ManifestDiagnostic] = []

    /// Scans `directory`, or throws when it is not a directory.
    static func scan(_ directory: URL) throws(ManifestDiagnostic) -> ManifestDirectory {
        var info = stat()
        guard let root = realPath(directory.path), stat(root, &info) == 0, isDirectory(info) else {
            throw ManifestDiagnostic(SourceLocation(file: directory.path, line: 1, column: 1), "", "no such directory")
        }
        var scan = ManifestDirectory(root: root)
        scan.walk(rootInfo: info)
        scan.files.sort { $0.path < $1.path }
        return scan
    }

    private init(root: String) {
        self.root = root
    }

    private static func isManifest(_ name: String) -> Bool {
        name.hasSuffix(".yaml") || name.hasSuffix(".yml")
    }

    private mutating func report(_ path: String, _ message: String) {
        diagnostics.append(ManifestDiagnostic(SourceLocation(file: path, line: 1, column: 1), "", message))
    }

    private struct DirectoryID: Hashable {
        var device: UInt64
        var inode: UInt64

        init(_ info: stat) {
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
        }
    }

    private mutating func walk(rootInfo: stat) {
        var visited: Set<DirectoryID> = [DirectoryID(rootInfo)]
        var listed: Set<String> = []
        var pending: [(absolute: String, relative: String)] = [(root, "")]
        while let directory = pending.popLast() {
            let names: [String]
            switch Self.list(directory.absolute) {
            case .success(let found): names = found
            case .failure(let error):
                report(
                    directory.relative.isEmpty ? "." : directory.relative,
                    "cannot read the directory: \(Self.describe(error.code))")
                continue
            }
            for name in names where !name.hasPrefix(".") {
                let absolute = directory.absolute == "/" ? "/" + name : directory.absolute + "/" + name
                let relative = directory.relative.isEmpty ? name : directory.relative + "/" + name
                var info = stat()
                guard lstat(absolute, &info) == 0 else {
                    if Self.isManifest(name) { report(relative, "cannot read the file: \(Self.describe(errno))") }
                    continue
                }
                if Self.isSymbolicLink(info) {
                    follow(link: relative, absolute: absolute, name: name, visited: &visited, listed: &listed) {
                        pending.append($0)
                    }
                } else if Self.isDirectory(info) {
                    if visited.insert(DirectoryID(info)).inserted { pending.append((absolute, relative)) }
                } else if Self.isManifest(name) {
                    guard Self.isRegularFile(info) else {
                        report(relative, "not a regular file (it is \(Self.typeName(info)))")
                        continue
                    }
                    if listed.insert(relative).inserted {
                        files.append(File(path: relative, absolutePath: absolute, identity: FileIdentity(info)))
                    }
                }
            }
        }
    }

    /// Resolves the link at `relative`: a directory inside the root is walked, a manifest file inside it listed.
    private mutating func follow(
        link relative: String, absolute: String, name: String, visited: inout Set<DirectoryID>,
        listed: inout Set<String>, walk: ((absolute: String, relative: String)) -> Void
    ) {
        guard let target = Self.realPath(absolute) else {
            let code = errno
            if Self.isManifest(name) {
                let pointsTo = Self.linkText(absolute).map { " (it points to \($0))" } ?? ""
                report(
                    relative,
                    code == ENOENT
                        ? "symbolic link points to nothing\(pointsTo)"
                        : "cannot follow the symbolic link: \(Self.describe(code))\(pointsTo)")
            }
            return
        }
        var info = stat()
        guard stat(target, &info) == 0 else {
            if Self.isManifest(name) { report(relative, "cannot read the file: \(Self.describe(errno))") }
            return
        }
        let isDirectory = Self.isDirectory(info)
        guard isDirectory || Self.isManifest(name) else { return }
        guard let targetRelative = relativePath(of: target) else {
            return report(
                relative, "symbolic link leaves the manifests directory (it points to \(target))")
        }
        if isDirectory {
            if visited.insert(DirectoryID(info)).inserted { walk((target, targetRelative)) }
        } else if !Self.isRegularFile(info) {
            report(relative, "not a regular file (it points to \(Self.typeName(info)))")
        } else if listed.insert(targetRelative).inserted {
            files.append(File(path: targetRelative, absolutePath: target, identity: FileIdentity(info)))
        }
    }

    /// The path of `absolute` relative to the root, or nil when it is outside the root.
    private func relativePath(of absolute: String) -> String? {
        if absolute == root { return "" }
        let prefix = root.hasSuffix("/") ? root : root + "/"
        guard absolute.hasPrefix(prefix) else { return nil }
        return String(absolute.dropFirst(prefix.count))
    }

    /// Reads a listed file: opened without following a link and without blocking (a FIFO swapped in since the scan
    /// is refused, not waited on), checked to be a regular file of at most `limit` bytes, read whole.
    static func contents(of file: File, limit: Int) -> Result<
        (bytes: [UInt8], identity: FileIdentity), ManifestDiagnostic
    > {
        func failure(_ message: String) -> Result<(bytes: [UInt8], identity: FileIdentity), ManifestDiagnostic> {
            .failure(ManifestDiagnostic(SourceLocation(file: file.path, line: 1, column: 1), "", message))
        }
        let descriptor = open(file.absolutePath, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else { return failure("cannot read the file: \(describe(errno))") }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return failure("cannot read the file: \(describe(errno))") }
        guard isRegularFile(info) else { return failure("not a regular file (it is \(typeName(info)))") }
        let identity = FileIdentity(info)
        guard identity.size <= limit else { return failure(tooLarge(identity.size, limit: limit)) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(identity.size)
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return failure("cannot read the file: \(describe(errno))")
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[..<count])
            guard bytes.count <= limit else { return failure(tooLarge(bytes.count, limit: limit)) }
        }
        return .success((bytes, identity))
    }

    static func tooLarge(_ size: Int, limit: Int) -> String {
        "file is \(size) bytes, more than the limit of \(limit)"
    }

    /// An `errno` value.
    private struct SystemError: Error {
        var code: Int32
    }

    private static func list(_ path: String) -> Result<[String], SystemError> {
        guard let handle = opendir(path) else { return .failure(SystemError(code: errno)) }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return .success(names)
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    private static func linkText(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The system's message for an `errno`, starting lower-case: `permission denied`.
    static func describe(_ code: Int32) -> String {
        let text = String(cString: strerror(code))
        return text.prefix(1).lowercased() + text.dropFirst()
    }

    private static func fileType(_ info: stat) -> mode_t { info.st_mode & S_IFMT }
    private static func isDirectory(_ info: stat) -> Bool { fileType(info) == S_IFDIR }
    private static func isRegularFile(_ info: stat) -> Bool { fileType(info) == S_IFREG }
    private static func isSymbolicLink(_ info: stat) -> Bool { fileType(info) == S_IFLNK }

    private static func typeName(_ info: stat) -> String {
        switch fileType(info) {
        case S_IFIFO: "a fifo"
        case S_IFSOCK: "a socket"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFDIR: "a directory"
        default: "an unknown kind of file"
        }
    }
}
