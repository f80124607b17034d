import HTTPTypes
import Hummingbird

/// One endpoint of the daemon: a method, a path (`:name` segments are parameters) and its handler.
///
/// The server registers its routes from one list, so the router and `RouteTable`, which tells a wrong method (405)
/// from an unknown path (404), cannot disagree.
struct Route: Sendable {
    let method: HTTPRequest.Method
    let path: String
    let handler: @Sendable (Request, BasicRequestContext) async throws -> Response

    init(
        _ method: HTTPRequest.Method, _ path: String,
        handler: @escaping @Sendable (Request, BasicRequestContext) async throws -> Response
    ) {
        self.method = method
        self.path = path
        self.handler = handler
    }
}

/// The methods each route path serves.
struct RouteTable: Sendable {
    private var paths: [(segments: [Substring], methods: [HTTPRequest.Method])] = []

    init(_ routes: [Route]) {
        for route in routes {
            let segments = Self.segments(of: route.path)
            if let index = paths.firstIndex(where: { $0.segments == segments }) {
                paths[index].methods.append(route.method)
            } else {
                paths.append((segments, [route.method]))
            }
        }
    }

    /// The methods served on the request path `path`, in the order they were declared; empty when no route has it.
    func methods(forPath path: String) -> [HTTPRequest.Method] {
        let requested = Self.segments(of: path)
        return paths.first { route in
            route.segments.count == requested.count
                && zip(route.segments, requested).allSatisfy { pattern, segment in
                    pattern.first == ":" || pattern == segment
                }
        }?.methods ?? []
    }

    /// A path's segments, as the router splits it: empty segments (a leading or trailing `/`) do not count.
    private static func segments(of path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: true)
    }
}
