/// A manifests repository of any size, written by code: 10 environments, and in each group of four instances a
/// `network` and a `queue` that a `db` connects to, and an `app` that connects to the `db` and the `queue`, with
/// 0.3 to 1.3 KB of params each. The shape of the repositories the daemon is measured on (`make bench`).
enum GeneratedRepository {
    static let environments = 10

    /// The repository's files as (path, text): one for the project, environments and bundles, and one per
    /// environment per hundred groups of instances.
    static func files(instances: Int) -> [(path: String, text: String)] {
        var files = [("platform.yaml", platform)]
        let groups = (instances + 3) / 4
        var perFile: [String: String] = [:]
        for group in 0..<groups {
            let environment = "env\(group % environments)"
            let path = "instances/\(environment)-\(group / environments / 100).yaml"
            let made = min(4, instances - group * 4)
            perFile[path, default: ""] += self.group(group, environment: environment, count: made)
        }
        files += perFile.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        return files
    }

    static var platform: String {
        var text = """
            apiVersion: converge/v1
            kind: Project
            metadata: {name: shop}
            ---
            apiVersion: converge/v1
            kind: Provisioner
            metadata: {name: hook}
            spec:
              webhook: {url: "http://127.0.0.1:9/deploy"}
            ---
            apiVersion: converge/v1
            kind: Bundle
            metadata: {name: network}
            spec:
              provisioner: hook
              artifacts: {vpc: {type: aws-vpc}}
              paramsSchema: {type: object, properties: {cidr: {type: string, pattern: "^[0-9./]+$"}}}
            ---
            apiVersion: converge/v1
            kind: Bundle
            metadata: {name: queue}
            spec:
              provisioner: hook
              artifacts: {queue: {type: sqs-queue}}
            ---
            apiVersion: converge/v1
            kind: Bundle
            metadata: {name: db}
            spec:
              provisioner: hook
              connections: {network: {type: aws-vpc}, events: {type: sqs-queue}}
              artifacts: {endpoint: {type: postgres-endpoint}}
              paramsSchema:
                type: object
                required: [tier]
                properties:
                  tier: {type: string, enum: [small, large]}
                  size: {type: integer, minimum: 20, default: 20}
                  owner: {type: string, pattern: "^[a-z]+$", maxLength: 20}
                  tags: {type: object, additionalProperties: {type: string, pattern: "^[a-z0-9-]+$"}}
            ---
            apiVersion: converge/v1
            kind: Bundle
            metadata: {name: app}
            spec:
              provisioner: hook
              connections: {database: {type: postgres-endpoint}, queue: {type: sqs-queue}}
              artifacts: {url: {type: http-endpoint}}

            """
        for index in 0..<environments {
            text += """
                ---
                apiVersion: converge/v1
                kind: Environment
                metadata: {name: env\(index), project: shop}
                spec: {policy: auto}

                """
        }
        return text
    }

    /// Four instances (or fewer, for the last group) of group `group`.
    static func group(_ group: Int, environment: String, count: Int) -> String {
        let tags = "    tags:\n" + (0..<(8 + group % 40)).map { "      tag\($0): value-\(group)-\($0)\n" }.joined()
        let instances = [
            ("network\(group)", "network", "  params:\n    cidr: 10.\(group % 256).0.0/16\n" + tags),
            ("queue\(group)", "queue", "  params:\n    fifo: true\n" + tags),
            (
                "db\(group)", "db",
                "  connections: {network: network\(group), events: queue\(group)}\n"
                    + "  params:\n    tier: small\n    owner: team\n" + tags
            ),
            (
                "app\(group)", "app",
                "  connections: {database: db\(group), queue: queue\(group).queue}\n"
                    + "  params:\n    replicas: 3\n" + tags
            ),
        ]
        return instances.prefix(count).map { name, bundle, spec in
            """
            ---
            apiVersion: converge/v1
            kind: Instance
            metadata: {name: \(name), project: shop, environment: \(environment)}
            spec:
              bundle: \(bundle)
            \(spec)
            """
        }.joined()
    }
}
