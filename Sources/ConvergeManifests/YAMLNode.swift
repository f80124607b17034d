import ConvergeCore

/// A YAML node with the place it was written: every value of a manifest knows its file, line and column.
public struct YAMLNode: Sendable {
    /// One `key: value` entry of a mapping, with where the key was written.
    public struct Entry: Sendable {
        public var key: String
        public var keyLocation: SourceLocation
        public var value: YAMLNode
    }

    /// The shape of the node. Scalars are already resolved (YAML 1.2 core schema); mappings keep every explicit
    /// entry in order, duplicates included, so that validation can report them.
    public indirect enum Kind: Sendable {
        case scalar(Value)
        case sequence([YAMLNode])
        case mapping([Entry])
    }

    public var kind: Kind
    public var location: SourceLocation

    /// The value of the first entry named `key`, if this is a mapping that has one.
    public subscript(key: String) -> YAMLNode? {
        guard case .mapping(let entries) = kind else { return nil }
        return entries.first { $0.key == key }?.value
    }

    /// The entries of a mapping, or nil.
    public var entries: [Entry]? {
        if case .mapping(let entries) = kind { return entries }
        return nil
    }

    /// The elements of a sequence, or nil.
    public var elements: [YAMLNode]? {
        if case .sequence(let elements) = kind { return elements }
        return nil
    }

    /// The scalar's value, or nil for a collection.
    public var scalar: Value? {
        if case .scalar(let value) = kind { return value }
        return nil
    }

    /// The string of a string scalar, or nil.
    public var string: String? { scalar?.stringValue }

    /// The node as a plain value (the first of duplicate keys wins; validation reports the others).
    public var value: Value {
        switch kind {
        case .scalar(let value):
            return value
        case .sequence(let elements):
            return .array(elements.map(\.value))
        case .mapping(let entries):
            var members: [String: Value] = [:]
            for entry in entries where members[entry.key] == nil {
                members[entry.key] = entry.value.value
            }
            return .object(members)
        }
    }

    /// A name for the node's type in error messages, as JSON Schema spells types.
    public var typeDescription: String {
        switch kind {
        case .scalar(let value): value.typeName
        case .sequence: "array"
        case .mapping: "object"
        }
    }
}

extension YAMLNode {
    /// A node for `value`, every part of it located at `location`: for checking decoded values whose own nodes
    /// are no longer kept.
    init(_ value: Value, at location: SourceLocation) {
        switch value {
        case .array(let elements):
            self.init(kind: .sequence(elements.map { YAMLNode($0, at: location) }), location: location)
        case .object(let members):
            self.init(
                kind: .mapping(
                    members.sorted { $0.key < $1.key }.map {
                        Entry(key: $0.key, keyLocation: location, value: YAMLNode($0.value, at: location))
                    }), location: location)
        default:
            self.init(kind: .scalar(value), location: location)
        }
    }

    /// This mapping without the entries named `field` in its entry `parent`.
    func removing(field: String, of parent: String) -> YAMLNode {
        guard case .mapping(var entries) = kind else { return self }
        for index in entries.indices where entries[index].key == parent {
            if case .mapping(let children) = entries[index].value.kind {
                entries[index].value.kind = .mapping(children.filter { $0.key != field })
            }
        }
        var node = self
        node.kind = .mapping(entries)
        return node
    }
}
