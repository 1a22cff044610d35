-- GET with the access token the bench script obtained at login.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
wrk.headers["authorizationMethod"] = "JWT"
