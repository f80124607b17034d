import ConvergeCore

extension ParamsSchema {
    /// The compiled params schema of every cloud resource (`CloudResources.kinds`), built once.
    ///
    /// Every cloud bundle of a resource shares one schema object, so an instance's remembered params check
    /// (`ParamsCheck`, keyed by the schema's identity) stays valid while its bundle's file is edited.
    static let cloud: [String: ParamsSchema] = CloudResources.kinds.mapValues { kind in
        var problems: [ManifestDiagnostic] = []
        let location = SourceLocation(file: "cloud:\(kind.resource)", line: 1, column: 1)
        let schema = compile(YAMLNode(kind.paramsSchema, at: location), path: "paramsSchema", into: &problems)
        assert(problems.isEmpty, "the params schema of \(kind.resource) is not valid: \(problems)")
        return schema
    }
}
