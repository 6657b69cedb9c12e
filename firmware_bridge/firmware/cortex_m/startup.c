/* A Cortex-M3 test board for the firmware's tests (qemu-system-arm -M mps2-an385): vector table, C runtime set-up,
 * and the exit status through ARM semihosting (qemu's exit status is 0 for a pass, 1 for a failure). */
#include <stdint.h>

extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;
extern void initialise_monitor_handles(void); /* newlib's rdimon: printf through semihosting */
int main(void);

#define SYS_EXIT 0x18
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define ADP_STOPPED_RUNTIME_ERROR 0x20023

static void semihosting_exit(int failed)
{
    register uint32_t r0 __asm__("r0") = SYS_EXIT;
    register uint32_t r1 __asm__("r1") = failed ? ADP_STOPPED_RUNTIME_ERROR : ADP_STOPPED_APPLICATION_EXIT;
    __asm__ volatile("bkpt 0xAB" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {
    }
}

void Reset_Handler(void)
{
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) {
        *dst++ = *src++;
    }
    for (dst = &_sbss; dst < &_ebss; dst++) {
        *dst = 0;
    }
    initialise_monitor_handles();
    semihosting_exit(main() != 0);
}

static void Fault_Handler(void) { semihosting_exit(1); }

typedef void (*vector)(void);
__attribute__((section(".isr_vector"), used)) static const vector vectors[16] = {
    (vector)(uintptr_t)&_estack, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler,
};
