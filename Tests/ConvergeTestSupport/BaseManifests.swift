/// The documents most test repositories start with: project p, its environment dev, whose spec is `environment`
/// (flow YAML without its braces), and provisioner `provisioner`, whose spec is `spec` (flow YAML); ends with the
/// `---` of the document that follows.
public func baseManifests(environment: String = "policy: auto", provisioner: String = "hook", spec: String) -> String {
    """
    apiVersion: converge/v1
    kind: Project
    metadata: {name: p}
    ---
    apiVersion: converge/v1
    kind: Environment
    metadata: {name: dev, project: p}
    spec: {\(environment)}
    ---
    apiVersion: converge/v1
    kind: Provisioner
    metadata: {name: \(provisioner)}
    spec: \(spec)
    ---

    """
}
