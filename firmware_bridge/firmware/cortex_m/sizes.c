/* How much RAM the hand firmware's state takes on this target, with this build's packet size. */
#include <stdio.h>

#include "nh_hand.h"

int main(void)
{
    printf("nh_hand, the firmware's whole state (NH_MAX_PACKET=%u): %u bytes of RAM\n", (unsigned)NH_MAX_PACKET,
           (unsigned)sizeof(nh_hand));
    return 0;
}
