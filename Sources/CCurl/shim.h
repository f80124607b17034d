// Typed wrappers for libcurl's variadic curl_easy_setopt, curl_easy_getinfo and curl_multi_setopt, which Swift
// cannot call, and for the union in CURLMsg.
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

static inline CURLcode converge_curl_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode converge_curl_getinfo_string(CURL *handle, CURLINFO info, const char **value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLMcode converge_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return curl_multi_setopt(multi, option, value);
}

/// The result of a finished transfer, from the union of a CURLMSG_DONE message.
static inline CURLcode converge_curl_msg_result(const CURLMsg *message) {
    return message->data.result;
}

#endif
