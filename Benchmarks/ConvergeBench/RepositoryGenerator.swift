import Foundation

/// Writes the benchmark's GitOps repository: N instances in 10 environments of project `bench`, in stacks of four
/// (`networkK` and `queueK` → `dbK` → `appK`, three waves), 0.3–1.3 KB of seeded params each, one stack per file,
/// one webhook provisioner at a loopback URL, environments with `policy: auto`.
///
/// A generated repository is reused while its stamp (generator version, size, provisioner URL) matches.
struct RepositoryGenerator {
    /// Bump when the output changes, so that stale repositories are regenerated.
    static let version = 2
    static let environments = 10
    static let project = "bench"
    /// The variable holding the webhook's signing secret; the bench sets it for itself and the daemon.
    static let secretVariable = "CONVERGE_BENCH_WEBHOOK_SECRET"

    var instances: Int
    var webhookURL: String

    /// `size` rounded to whole stacks in every environment (a multiple of 40).
    static func rounded(_ size: Int) -> Int {
        max(40, (size + 20) / 40 * 40)
    }

    /// A generated repository on disk.
    struct Repository: Sendable {
        var directory: URL
        var instances: Int
        var files: Int
        var bytes: Int
        /// Every instance id, sorted.
        var instanceIDs: [String]
    }

    /// The repository under `root`, generated unless a matching one is there.
    func ensure(under root: URL) throws -> Repository {
        let directory = root.appendingPathComponent("repo-\(instances)", isDirectory: true)
        let stampURL = directory.appendingPathComponent(".generator")
        let stamp = "version=\(Self.version) instances=\(instances) url=\(webhookURL)\n"
        if (try? String(contentsOf: stampURL, encoding: .utf8)) != stamp {
            progress("generating a repository of \(instances) instances in \(directory.path)")
            try? FileManager.default.removeItem(at: directory)
            try write(into: directory)
            try stamp.write(to: stampURL, atomically: true, encoding: .utf8)
        }
        return try Self.describe(directory, instances: instances)
    }

    static func describe(_ directory: URL, instances: Int) throws -> Repository {
        var files = 0
        var bytes = 0
        let enumerator = FileManager.default.enumerator(
            at: directory, includingPropertiesForKeys: [.fileSizeKey], options: [.skipsHiddenFiles])
        while let url = enumerator?.nextObject() as? URL {
            guard url.pathExtension == "yaml" else { continue }
            files += 1
            bytes += try url.resourceValues(forKeys: [.fileSizeKey]).fileSize ?? 0
        }
        return Repository(
            directory: directory, instances: instances, files: files, bytes: bytes,
            instanceIDs: instanceIDs(instances: instances))
    }

    static func stacksPerEnvironment(instances: Int) -> Int { instances / environments / 4 }

    static func instanceIDs(instances: Int) -> [String] {
        var ids: [String] = []
        for environment in 0..<environments {
            for stack in 0..<stacksPerEnvironment(instances: instances) {
                for name in ["network", "queue", "db", "app"] {
                    ids.append("\(project)-env\(environment)-\(name)\(stack)")
                }
            }
        }
        return ids.sorted()
    }

    /// The file of a stack, relative to the repository.
    static func stackPath(environment: Int, stack: Int) -> String {
        "environments/env\(environment)/stack\(stack).yaml"
    }

    private func write(into directory: URL) throws {
        let files = FileManager.default
        try files.createDirectory(at: directory, withIntermediateDirectories: true)
        try Self.header.write(to: directory.appendingPathComponent("project.yaml"), atomically: false, encoding: .utf8)
        try provisioners.write(
            to: directory.appendingPathComponent("provisioners.yaml"), atomically: false, encoding: .utf8)
        try Self.bundles.write(to: directory.appendingPathComponent("bundles.yaml"), atomically: false, encoding: .utf8)
        var random = SplitMix64(seed: 0x636f_6e76_6572_6765)
        for environment in 0..<Self.environments {
            let folder = directory.appendingPathComponent("environments/env\(environment)", isDirectory: true)
            try files.createDirectory(at: folder, withIntermediateDirectories: true)
            try Self.environment(environment).write(
                to: directory.appendingPathComponent("environments/env\(environment).yaml"), atomically: false,
                encoding: .utf8)
            for stack in 0..<Self.stacksPerEnvironment(instances: instances) {
                let text = Self.stack(environment: environment, stack: stack, random: &random)
                try text.write(
                    to: directory.appendingPathComponent(Self.stackPath(environment: environment, stack: stack)),
                    atomically: false, encoding: .utf8)
            }
        }
    }

    static let header = """
        apiVersion: converge/v1
        kind: Project
        metadata:
          name: \(project)
          labels: {team: platform}
        spec:
          description: The benchmark's generated repository.

        """

    var provisioners: String {
        """
        apiVersion: converge/v1
        kind: Provisioner
        metadata:
          name: instant
        spec:
          description: The benchmark's instant webhook, served by converge-bench itself.
          webhook:
            url: \(webhookURL)
            secretEnv: \(Self.secretVariable)
            timeoutSeconds: 30

        """
    }

    static func environment(_ index: Int) -> String {
        """
        apiVersion: converge/v1
        kind: Environment
        metadata:
          name: env\(index)
          project: \(project)
        spec:
          description: Generated environment \(index).
          policy: auto
          prune: true

        """
    }

    static let bundles = """
        apiVersion: converge/v1
        kind: Bundle
        metadata: {name: bench-network}
        spec:
          provisioner: instant
          artifacts:
            vpc: {type: aws-vpc}
          paramsSchema:
            type: object
            required: [cidr]
            additionalProperties: false
            properties:
              cidr: {type: string, pattern: '^[0-9]{1,3}(\\.[0-9]{1,3}){3}/[0-9]{1,2}$'}
              az_count: {type: integer, minimum: 1, maximum: 6, default: 2}
              tags: {type: object, additionalProperties: {type: string, maxLength: 64}}
        ---
        apiVersion: converge/v1
        kind: Bundle
        metadata: {name: bench-queue}
        spec:
          provisioner: instant
          artifacts:
            queue: {type: sqs-queue}
          paramsSchema:
            type: object
            additionalProperties: false
            properties:
              fifo: {type: boolean, default: false}
              retention_hours: {type: integer, minimum: 1, maximum: 336, default: 96}
              tags: {type: object, additionalProperties: {type: string, maxLength: 64}}
        ---
        apiVersion: converge/v1
        kind: Bundle
        metadata: {name: bench-postgres}
        spec:
          provisioner: instant
          connections:
            network: {type: aws-vpc}
          artifacts:
            endpoint: {type: postgres-endpoint}
          paramsSchema:
            type: object
            required: [instance_class, storage_gb]
            additionalProperties: false
            properties:
              instance_class: {type: string, enum: [db.t4g.micro, db.t4g.medium, db.r6g.large, db.r6g.xlarge]}
              storage_gb: {type: integer, minimum: 20, maximum: 16384, default: 20}
              engine_version: {type: string, pattern: '^1[4-7](\\.[0-9]+)?$', default: "16"}
              multi_az: {type: boolean, default: false}
              tags: {type: object, additionalProperties: {type: string, maxLength: 64}}
        ---
        apiVersion: converge/v1
        kind: Bundle
        metadata: {name: bench-app}
        spec:
          provisioner: instant
          connections:
            database: {type: postgres-endpoint}
            queue: {type: sqs-queue}
          artifacts:
            url: {type: http-endpoint}
          paramsSchema:
            type: object
            required: [image]
            additionalProperties: false
            properties:
              image: {type: string, minLength: 1}
              replicas: {type: integer, minimum: 1, maximum: 50, default: 2}
              env: {type: object, additionalProperties: {type: string}}

        """

    /// The four instances of one stack; the queue's params start with `rev: v0`, which the change-to-PENDING
    /// measurement rewrites.
    static func stack(environment: Int, stack: Int, random: inout SplitMix64) -> String {
        let metadata = "project: \(project), environment: env\(environment)"
        let classes = ["db.t4g.micro", "db.t4g.medium", "db.r6g.large", "db.r6g.xlarge"]
        func instance(_ name: String, bundle: String, labels: String, params: [String], connections: String?)
            -> String
        {
            var lines = [
                "apiVersion: converge/v1",
                "kind: Instance",
                "metadata: {name: \(name)\(stack), \(metadata), labels: {\(labels), stack: s\(stack)}}",
                "spec:",
                "  bundle: \(bundle)",
                "  version: 1.\(stack % 7).\(stack % 3)",
                "  params:",
            ]
            lines += params.map { "    " + $0 }
            if let connections { lines.append("  connections: {\(connections)}") }
            return lines.joined(separator: "\n") + "\n"
        }
        let network = instance(
            "network", bundle: "bench-network", labels: "tier: network",
            params: [
                "cidr: 10.\(environment).\(stack % 256).0/24", "az_count: \(1 + stack % 6)",
            ] + filler("tags", random: &random, fixed: 40), connections: nil)
        let queue = instance(
            "queue", bundle: "bench-queue", labels: "tier: messaging",
            params: ["fifo: \(stack % 2 == 0)", "retention_hours: \(1 + stack % 336)"]
                + filler("tags", random: &random, fixed: 40, first: "rev: v0"),
            connections: nil)
        let database = instance(
            "db", bundle: "bench-postgres", labels: "tier: data",
            params: [
                "instance_class: \(classes[stack % classes.count])", "storage_gb: \(20 + stack % 2000)",
                "engine_version: \"1\(4 + stack % 4)\"", "multi_az: \(stack % 3 == 0)",
            ] + filler("tags", random: &random, fixed: 90), connections: "network: network\(stack)")
        let app = instance(
            "app", bundle: "bench-app", labels: "tier: web",
            params: [
                "image: registry.example.com/team\(stack % 50)/service\(stack):1.\(stack % 20).0",
                "replicas: \(1 + stack % 50)",
            ] + filler("env", random: &random, fixed: 70, key: { "VAR_\($0)" }),
            connections: "database: db\(stack), queue: queue\(stack)")
        return ["# Stack \(stack) of env\(environment).\n" + network, queue, database, app].joined(separator: "---\n")
    }

    /// A map of seeded string entries that brings an instance's params to a size drawn from 300–1300 bytes, most of
    /// them small (300 + 950·u⁴ bytes, u uniform: 500 bytes on average), as in a real repository where a few
    /// instances carry most of the configuration; 10k instances make about 7.5 MB.
    static func filler(
        _ field: String, random: inout SplitMix64, fixed: Int, first: String? = nil,
        key: (Int) -> String = { "k\($0)" }
    ) -> [String] {
        let uniform = Double(random.next() >> 11) / Double(1 << 53)
        let target = 300 + Int(950 * uniform * uniform * uniform * uniform)
        var lines = ["\(field):"]
        var size = fixed + field.count + 2
        if let first {
            lines.append("  " + first)
            size += first.count + 7
        }
        var index = 0
        while size < target {
            let length = 8 + Int(random.next() % 40)
            let value = "v" + random.slug(length: length)
            let line = "  \(key(index)): \(value)"
            lines.append(line)
            size += line.count + 5
            index += 1
        }
        return lines
    }
}

/// A small, fast, seeded generator (SplitMix64), so that generated inputs are the same on every machine.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// Lower-case letters, digits and dashes.
    mutating func slug(length: Int) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789-")
        return String((0..<length).map { _ in alphabet[Int(next() % UInt64(alphabet.count))] })
    }
}
