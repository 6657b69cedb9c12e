/* The hardware layer a port of the hand firmware implements: three functions. */
#ifndef NH_HAL_H
#define NH_HAL_H

#include <stdint.h>

/* The next byte received from the host (USB CDC or UART), or -1 when none is waiting. Must not block. */
int nh_hal_read_byte(void);

/* Send one byte to the host. May buffer; must not block for long (drop when the host is gone, as a UART does). */
void nh_hal_write_byte(uint8_t byte);

/* Drive the five finger motors toward these positions: thumb, index, middle, ring, little; 0 open .. 1000 flexed.
 * Called every step with the speed-limited setpoint, never with a jump larger than the hand's speed allows. */
void nh_hal_set_motor_targets(const uint16_t targets[5]);

#endif
