import ConvergeCore

extension CloudResources.Kind {
    /// The param `name` of `params`, or its schema default when absent.
    ///
    /// The daemon applies the schema's defaults before a driver runs; a driver called another way (a test, the bench)
    /// may not have, and gets the same object either way.
    func param(_ name: String, in params: Value) -> Value? {
        if let value = params[name], value != .null { return value }
        return paramsSchema["properties"]?[name]?["default"]
    }

    /// The integer param `name` (or its default); anything else is an error naming the param.
    func integer(_ name: String, in params: Value) throws -> Int {
        guard case .int(let value)? = param(name, in: params) else {
            throw CloudError("\(resource): param \(name) must be an integer")
        }
        return value
    }

    /// The boolean param `name` (or its default).
    func boolean(_ name: String, in params: Value) throws -> Bool {
        guard case .bool(let value)? = param(name, in: params) else {
            throw CloudError("\(resource): param \(name) must be a boolean")
        }
        return value
    }

    /// The string param `name`, or nil when it is absent and has no default.
    func string(_ name: String, in params: Value) throws -> String? {
        switch param(name, in: params) {
        case nil: return nil
        case .string(let value)?: return value
        default: throw CloudError("\(resource): param \(name) must be a string")
        }
    }

    /// The `tags` param: string keys to string values, empty when absent (the object then gets no tags, and loses any
    /// it has).
    func tags(in params: Value) throws -> [String: String] {
        guard let tags = param("tags", in: params) else { return [:] }
        guard let members = tags.objectValue else { throw CloudError("\(resource): param tags must be an object") }
        return try members.mapValues { value in
            guard let text = value.stringValue else {
                throw CloudError("\(resource): every tag's value must be a string (param tags)")
            }
            return text
        }
    }
}
