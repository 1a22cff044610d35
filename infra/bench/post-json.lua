-- POST the JSON body of BENCH_BODY with the access token the bench script obtained at login.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
wrk.headers["authorizationMethod"] = "JWT"
wrk.body = os.getenv("BENCH_BODY")
