import Foundation

/// Everything a manifest load declares, keyed by id, with where each resource was declared.
public struct DesiredState: Equatable, Sendable {
    public var projects: [String: Project] = [:]
    public var environments: [String: Environment] = [:]
    public var resources: [String: ImportedResource] = [:]
    public var bundles: [String: BundleDefinition] = [:]
    public var provisioners: [String: Provisioner] = [:]
    public var instances: [String: Instance] = [:]
    public var previews: [String: Preview] = [:]
    /// Where each (kind, id) was declared.
    public var sources: [ResourceKey: SourceLocation] = [:]

    public init() {}

    /// How many resources of each kind were declared.
    public var counts: [ResourceKind: Int] {
        [
            .project: projects.count, .environment: environments.count, .resource: resources.count,
            .bundle: bundles.count, .provisioner: provisioners.count, .instance: instances.count,
            .preview: previews.count,
        ]
    }

    /// One resource as the store records it; nil when it is not declared.
    public func record(of key: ResourceKey) -> DesiredResource? {
        func record(_ item: (some Encodable)?) -> DesiredResource? {
            item.map { DesiredResource(kind: key.kind, id: key.id, spec: Value(encoding: $0), source: sources[key]) }
        }
        switch key.kind {
        case .project: return record(projects[key.id])
        case .environment: return record(environments[key.id])
        case .resource: return record(resources[key.id])
        case .bundle: return record(bundles[key.id])
        case .provisioner: return record(provisioners[key.id])
        case .instance: return record(instances[key.id])
        case .preview: return record(previews[key.id])
        }
    }

    /// Every resource as a kind, an id and its spec as a value, sorted by kind and id, for the store.
    public var records: [DesiredResource] {
        func records(_ kind: ResourceKind, _ items: [String: some Encodable]) -> [DesiredResource] {
            items.map { id, item in
                DesiredResource(kind: kind, id: id, spec: Value(encoding: item), source: sources[ResourceKey(kind, id)])
            }
        }
        let all =
            records(.project, projects) + records(.environment, environments) + records(.resource, resources)
            + records(.bundle, bundles) + records(.provisioner, provisioners) + records(.instance, instances)
            + records(.preview, previews)
        return all.sorted { ($0.kind, $0.id) < ($1.kind, $1.id) }
    }
}

/// The kind and id that name one resource.
public struct ResourceKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var kind: ResourceKind
    public var id: String

    public init(_ kind: ResourceKind, _ id: String) {
        self.kind = kind
        self.id = id
    }

    public var description: String { "\(kind.rawValue) \(id)" }

    public static func < (lhs: ResourceKey, rhs: ResourceKey) -> Bool { (lhs.kind, lhs.id) < (rhs.kind, rhs.id) }
}

/// One desired resource in the kind-independent form the store records.
public struct DesiredResource: Equatable, Sendable {
    public var kind: ResourceKind
    public var id: String
    public var spec: Value
    /// Where the manifests declare it; nil for resources created through the API.
    public var source: SourceLocation?

    public init(kind: ResourceKind, id: String, spec: Value, source: SourceLocation?) {
        self.kind = kind
        self.id = id
        self.spec = spec
        self.source = source
    }
}

extension Value {
    /// The value of an encodable type, through its JSON form.
    public init(encoding item: some Encodable) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        // Encoding plain structs of strings, numbers and values cannot fail.
        let data = try! encoder.encode(item)
        self = try! Value(json: String(decoding: data, as: UTF8.self))
    }
}

extension DesiredState {
    /// What differs from `previous`, in the store's form: resources declared anew, changed or declared elsewhere,
    /// and the keys no longer declared. Work in proportion to the state's size, encoding only what changed.
    public func records(changedFrom previous: DesiredState) -> (changed: [DesiredResource], removed: [ResourceKey]) {
        var changed: [DesiredResource] = []
        var removed: [ResourceKey] = []
        func compare<Item: Equatable & Encodable>(
            _ kind: ResourceKind, _ items: [String: Item], _ before: [String: Item]
        ) {
            for (id, item) in items {
                let key = ResourceKey(kind, id)
                if before[id] != item || previous.sources[key] != sources[key] {
                    changed.append(
                        DesiredResource(kind: kind, id: id, spec: Value(encoding: item), source: sources[key]))
                }
            }
            for id in before.keys where items[id] == nil { removed.append(ResourceKey(kind, id)) }
        }
        compare(.project, projects, previous.projects)
        compare(.environment, environments, previous.environments)
        compare(.resource, resources, previous.resources)
        compare(.bundle, bundles, previous.bundles)
        compare(.provisioner, provisioners, previous.provisioners)
        compare(.instance, instances, previous.instances)
        compare(.preview, previews, previous.previews)
        return (changed.sorted { ($0.kind, $0.id) < ($1.kind, $1.id) }, removed.sorted())
    }
}
