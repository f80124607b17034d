import HTTPTypes

/// The methods each route path serves, so the error middleware tells a wrong method (405) from an unknown path
/// (404). Built from the routes the router registered from `openapi.yaml`, so the two cannot disagree.
struct RouteTable: Sendable {
    private var paths: [(segments: [Substring], methods: [HTTPRequest.Method])] = []

    /// A table of `routes`, whose parameter segments are spelled `{name}` or `:name`.
    init(_ routes: [(method: HTTPRequest.Method, path: String)]) {
        for route in routes {
            let segments = Self.segments(of: route.path)
            if let index = paths.firstIndex(where: { $0.segments == segments }) {
                paths[index].methods.append(route.method)
            } else {
                paths.append((segments, [route.method]))
            }
        }
    }

    /// The methods served on the request path `path`, in the order they were registered; empty when no route has
    /// it.
    func methods(forPath path: String) -> [HTTPRequest.Method] {
        let requested = Self.segments(of: path)
        return paths.first { route in
            route.segments.count == requested.count
                && zip(route.segments, requested).allSatisfy { pattern, segment in
                    pattern.first == ":" || pattern.first == "{" || pattern == segment
                }
        }?.methods ?? []
    }

    /// A path's segments, as the router splits it: empty segments (a leading or trailing `/`) do not count.
    private static func segments(of path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: true)
    }
}
