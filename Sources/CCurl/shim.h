// Typed wrappers for libcurl's variadic curl_easy_setopt and curl_easy_getinfo, which Swift cannot call.
#ifndef CONVERGE_CCURL_SHIM_H
#define CONVERGE_CCURL_SHIM_H

#include <curl/curl.h>

/// The signature of CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION callbacks.
typedef size_t (*converge_curl_write_callback)(char *data, size_t size, size_t count, void *userdata);

static inline CURLcode converge_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode converge_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode converge_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode converge_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode converge_curl_setopt_write_callback(
    CURL *handle, CURLoption option, converge_curl_write_callback callback) {
    return curl_easy_setopt(handle, option, callback);
}

static inline CURLcode converge_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

#endif
