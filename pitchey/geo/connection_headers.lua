-- RFC 9110 7.6.1: a proxy removes the headers a request names in its Connection header
-- (hop-by-hop: meant for the edge, never for the worker). HAProxy 2.6 consumes only the
-- close and keep-alive tokens itself; this action removes every other named header, then
-- the Connection header. A WebSocket/upgrade request is left as it is.
core.register_action("strip_connection_headers", { "http-req" }, function(txn)
    local headers = txn.http:req_get_headers()
    local connection = headers["connection"]
    if connection == nil then
        return
    end
    local named = {}
    for _, value in pairs(connection) do
        for token in string.gmatch(value, "[^,%s]+") do
            local name = string.lower(token)
            if name == "upgrade" then
                return
            end
            if name ~= "close" and name ~= "keep-alive" then
                named[#named + 1] = name
            end
        end
    end
    for _, name in ipairs(named) do
        txn.http:req_del_header(name)
    end
    txn.http:req_del_header("connection")
end)
