#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void store_id_format(uint64_t id, char out[17])
{
    snprintf(out, 17, "%016llX", (unsigned long long)id);
}

bool store_id_parse(const char *s, uint64_t *out)
{
    if (strlen(s) != 16)
        return false;
    char *end;
    unsigned long long v = strtoull(s, &end, 16);
    if (*end != '\0')
        return false;
    *out = v;
    return true;
}
